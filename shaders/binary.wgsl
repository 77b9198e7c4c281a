// out = a (op) b element-wise, b broadcast by strides (rank ≤ 6; a stride of 0 repeats).
// ops: 0 add, 1 multiply, 2 maximum, 3 minimum, 4 PReLU (a >= 0 ? a : a * b), 5 a - b,
// 6 b - a. `scale` multiplies
// the result (Average).
struct Params {
    n: u32,
    op: u32,
    rank: u32,
    scale: f32,
    dims: array<vec4<u32>, 2>,      // output dims (6 used)
    b_strides: array<vec4<u32>, 2>, // strides of b per output dim (0 = broadcast)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn dim(i: u32) -> u32 {
    return params.dims[i / 4u][i % 4u];
}

fn bstride(i: u32) -> u32 {
    return params.b_strides[i / 4u][i % 4u];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= params.n) {
        return;
    }
    var rest = i;
    var bi = 0u;
    for (var d = params.rank; d > 0u; d--) {
        let size = dim(d - 1u);
        bi += (rest % size) * bstride(d - 1u);
        rest /= size;
    }
    let x = a[i];
    let y = b[bi];
    var r: f32;
    switch params.op {
        case 0u: { r = x + y; }
        case 1u: { r = x * y; }
        case 2u: { r = max(x, y); }
        case 3u: { r = min(x, y); }
        case 5u: { r = x - y; }
        case 6u: { r = y - x; }
        default: { r = select(x * y, x, x >= 0.0); }
    }
    out[i] = r * params.scale;
}
