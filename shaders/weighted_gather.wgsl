// out[i] = Σ_t weight[i*taps + t] * src[index[i*taps + t]], padded taps (0xFFFFFFFF) skipped:
// bilinear resizing (4 taps per output) and other fixed linear resamplings.
struct Params {
    n: u32,
    taps: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= params.n) {
        return;
    }
    var acc = 0.0;
    for (var t = 0u; t < params.taps; t++) {
        let j = index[i * params.taps + t];
        if (j != 0xFFFFFFFFu) {
            acc = fma(weight[i * params.taps + t], src[j], acc);
        }
    }
    dst[i] = acc;
}
