// Softmax (or log-softmax) over the last axis: one thread per row of `cols` values, in place.
struct Params {
    rows: u32,
    cols: u32,
    log: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = gid.x + gid.y * groups.x * 64u;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.cols;
    var m = x[base];
    for (var j = 1u; j < params.cols; j++) {
        m = max(m, x[base + j]);
    }
    var s = 0.0;
    for (var j = 0u; j < params.cols; j++) {
        s += exp(x[base + j] - m);
    }
    for (var j = 0u; j < params.cols; j++) {
        let shifted = x[base + j] - m;
        x[base + j] = select(exp(shifted) / s, shifted - log(s), params.log != 0u);
    }
}
