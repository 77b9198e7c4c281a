// Embedding lookup: out[i*dim + j] = table[id_i*dim + j], ids carried as float32 (cast as TF.js
// casts them: truncated toward zero, so -0.5 is id 0). An id outside [0, rows), or NaN, yields
// NaN, which the NaN/Inf checks report (ids straight from the model's inputs are checked on the
// host first, with the CPU's error). A table above the storage binding limit comes in blocks
// of rows, one dispatch each: a dispatch writes the ids in [first, first + block_rows).
struct Params {
    n: u32,
    dim: u32,
    rows: u32,
    first: u32,
    block_rows: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
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
        if (params.first == 0u) {
            out[i] = bitcast<f32>(0x7fc00000u);
        }
        return;
    }
    let r = u32(v);
    if (r < params.first || r >= params.first + params.block_rows) {
        return;
    }
    out[i] = table[(r - params.first) * params.dim + i % params.dim];
}
