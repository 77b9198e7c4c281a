// Discretization's bucket of each value: how many boundaries are <= x (numpy.digitize with
// increasing bins, right=False), as a float; NaN counts past every boundary, as digitize does.
struct Params {
    n: u32,
    bins: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> boundaries: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= params.n) {
        return;
    }
    let v = x[i];
    var count = 0u;
    for (var j = 0u; j < params.bins; j++) {
        if (!(v < boundaries[j])) {
            count += 1u;
        }
    }
    y[i] = f32(count);
}
