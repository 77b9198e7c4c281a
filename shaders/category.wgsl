// CategoryEncoding: out[r, k] = how many of row r's `per_row` tokens equal k (count), or
// whether any does (one-hot, multi-hot). Tokens are integers carried as float32.
struct Params {
    rows: u32,
    per_row: u32,
    depth: u32,
    count: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= params.rows * params.depth) {
        return;
    }
    let r = i / params.depth;
    let k = f32(i % params.depth);
    var hits = 0.0;
    for (var n = 0u; n < params.per_row; n++) {
        hits += select(0.0, 1.0, floor(x[r * params.per_row + n]) == k);
    }
    out[i] = select(min(hits, 1.0), hits, params.count != 0u);
}
