// y[i] = a * x[i] + b over n elements: the smallest kernel that proves a device computes.
struct Params {
    n: u32,
    a: f32,
    b: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    // 2D dispatch grid so n may exceed 65535 workgroups in one dimension.
    let i = gid.x + gid.y * groups.x * 64u;
    if (i < params.n) {
        y[i] = params.a * x[i] + params.b;
    }
}
