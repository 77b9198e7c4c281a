// Embedding lookup: out[i*dim + j] = table[id_i*dim + j], ids carried as float32 (cast as TF.js
// casts them: truncated toward zero, so -0.5 is id 0). An id outside [0, rows), or NaN, yields
// NaN, which the NaN/Inf checks report (ids straight from the model's inputs are checked on the
// host first, with the CPU's error).
struct Params {
    n: u32,
    dim: u32,
    rows: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> ids: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= params.n) {
        return;
    }
    let v = trunc(ids[i / params.dim]);
    if (!(v >= 0.0 && v < f32(params.rows))) {
        out[i] = bitcast<f32>(0x7fc00000u);
        return;
    }
    out[i] = table[u32(v) * params.dim + i % params.dim];
}
