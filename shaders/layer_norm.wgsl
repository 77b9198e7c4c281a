// LayerNormalization over the trailing `group` values of each row: one thread per row,
// y = (x - mean) / sqrt(var + eps) * gamma + beta (population variance, as TF.js's moments).
struct Params {
    rows: u32,
    group: u32,
    has_gamma: u32,
    has_beta: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = gid.x + gid.y * groups.x * 64u;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.group;
    var mean = 0.0;
    for (var j = 0u; j < params.group; j++) {
        mean += x[base + j];
    }
    mean /= f32(params.group);
    var v = 0.0;
    for (var j = 0u; j < params.group; j++) {
        let d = x[base + j] - mean;
        v += d * d;
    }
    let inv = inverseSqrt(v / f32(params.group) + params.eps);
    for (var j = 0u; j < params.group; j++) {
        var r = (x[base + j] - mean) * inv;
        if (params.has_gamma != 0u) {
            r *= gamma[j];
        }
        if (params.has_beta != 0u) {
            r += beta[j];
        }
        y[base + j] = r;
    }
}
