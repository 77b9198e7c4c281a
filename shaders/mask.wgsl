// Masks ([rows] of 1 keep / 0 masked, one per time step) and their application:
//   MASK_FROM_IDS: mask[r] = x[r] != 0 (Embedding ids with mask_zero; rows = elements)
//   MASK_FROM_FEATURES: mask[r] = any(x[r, :] != value) over `features` (Masking)
//   MASK_APPLY: out[i] = x[i] * mask[i / features] (Masking's output)
struct Params {
    n: u32,
    features: u32,
    mode: u32,
    value: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mask_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= params.n) {
        return;
    }
    switch params.mode {
        case MASK_FROM_IDS: {
            out[i] = select(0.0, 1.0, x[i] != 0.0);
        }
        case MASK_FROM_FEATURES: {
            var keep = 0.0;
            for (var f = 0u; f < params.features; f++) {
                keep = max(keep, select(0.0, 1.0, x[i * params.features + f] != params.value));
            }
            out[i] = keep;
        }
        default: {
            out[i] = x[i] * mask_in[i / params.features];
        }
    }
}
