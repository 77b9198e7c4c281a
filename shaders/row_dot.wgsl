// Dot of two [rows, k] inputs over k (Keras Dot with axes 1 on rank-2 inputs), optionally of the
// L2-normalized rows (cosine similarity; norms floored at 1e-12 as in l2_normalize).
struct Params {
    rows: u32,
    k: u32,
    normalize: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = gid.x + gid.y * groups.x * 64u;
    if (r >= params.rows) {
        return;
    }
    var dot = 0.0;
    var na = 0.0;
    var nb = 0.0;
    for (var j = 0u; j < params.k; j++) {
        let x = a[r * params.k + j];
        let y = b[r * params.k + j];
        dot = fma(x, y, dot);
        na = fma(x, x, na);
        nb = fma(y, y, nb);
    }
    if (params.normalize != 0u) {
        dot = dot / (sqrt(max(na, 1e-12)) * sqrt(max(nb, 1e-12)));
    }
    out[r] = dot;
}
