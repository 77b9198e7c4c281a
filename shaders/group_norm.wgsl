// Statistics over groups of a channels-last [batch, positions, channels] tensor, one invocation
// per (batch, group) of `channels / groups` channels at every position:
// mode 0 (GroupNormalization): y = x * inv + (beta[c] - mean * inv), inv = gamma[c] / sqrt(var + eps)
//   (population variance, two passes, as Keras's ops.moments);
// mode 1 (UnitNormalization, groups = 1, positions = 1): y = x * min(1 / sqrt(sum x²), 1 / eps).
struct Params {
    batch: u32,
    positions: u32,
    channels: u32,
    groups: u32,
    mode: u32,
    has_gamma: u32,
    has_beta: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = gid.x + gid.y * groups.x * 64u;
    if (row >= params.batch * params.groups) {
        return;
    }
    let b = row / params.groups;
    let width = params.channels / params.groups;
    let first = (row % params.groups) * width;
    let n = f32(params.positions * width);
    var sum = 0.0;
    var squares = 0.0;
    for (var p = 0u; p < params.positions; p++) {
        let base = (b * params.positions + p) * params.channels + first;
        for (var j = 0u; j < width; j++) {
            sum += x[base + j];
            squares = fma(x[base + j], x[base + j], squares);
        }
    }
    let mean = sum / n;
    var variance = 0.0;
    for (var p = 0u; p < params.positions; p++) {
        let base = (b * params.positions + p) * params.channels + first;
        for (var j = 0u; j < width; j++) {
            let d = x[base + j] - mean;
            variance = fma(d, d, variance);
        }
    }
    variance = variance / n;
    for (var p = 0u; p < params.positions; p++) {
        let base = (b * params.positions + p) * params.channels + first;
        for (var j = 0u; j < width; j++) {
            let c = first + j;
            if (params.mode == 1u) {
                y[base + j] = x[base + j] * min(inverseSqrt(squares), 1.0 / params.eps);
                continue;
            }
            var inv = inverseSqrt(variance + params.eps);
            if (params.has_gamma != 0u) {
                inv = inv * gamma[c];
            }
            var offset = -mean * inv;
            if (params.has_beta != 0u) {
                offset = offset + beta[c];
            }
            y[base + j] = fma(x[base + j], inv, offset);
        }
    }
}
