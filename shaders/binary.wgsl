// out = a (op) b element-wise, b broadcast by strides (rank ≤ 6; a stride of 0 repeats).
// ops (OP_*, src/gpu/ids.rs): add, multiply, maximum, minimum, PReLU (a >= 0 ? a : a * b), a - b,
// b - a. `scale` multiplies
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
        case OP_ADD: { r = x + y; }
        case OP_MULTIPLY: { r = x * y; }
        case OP_MAXIMUM: { r = max(x, y); }
        case OP_MINIMUM: { r = min(x, y); }
        case OP_SUBTRACT: { r = x - y; }
        case OP_REVERSED_SUBTRACT: { r = y - x; }
        case OP_P_RELU, default: { r = select(x * y, x, x >= 0.0); }
    }
    out[i] = r * params.scale;
}
