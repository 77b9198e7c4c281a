// Softmax, log-softmax or sparsemax (`mode` 0, 1, 2) over the last axis: one thread per row of
// `cols` values, in place.
struct Params {
    rows: u32,
    cols: u32,
    mode: u32,
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
    if (params.mode == ROW_SPARSEMAX) {
        sparsemax(base);
        return;
    }
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
        x[base + j] = select(exp(shifted) / s, shifted - log(s), params.mode == ROW_LOG_SOFTMAX);
    }
}

// Sparsemax without sorting (as layers/activation.rs): x_j is in the support when
// 1 + k_j x_j > s_j, k_j and s_j being the count and sum of the values >= x_j.
fn sparsemax(base: u32) {
    var k = 0.0;
    var total = 0.0;
    for (var j = 0u; j < params.cols; j++) {
        let xj = x[base + j];
        var kj = 0.0;
        var sj = 0.0;
        for (var i = 0u; i < params.cols; i++) {
            let xi = x[base + i];
            if (xi >= xj) {
                kj += 1.0;
                sj += xi;
            }
        }
        if (1.0 + kj * xj > sj) {
            k += 1.0;
            total += xj;
        }
    }
    let tau = (total - 1.0) / max(k, 1.0);
    for (var j = 0u; j < params.cols; j++) {
        x[base + j] = max(x[base + j] - tau, 0.0);
    }
}
