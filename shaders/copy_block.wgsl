// Copy a rows × cols block: dst[r * dst_cols + offset + c] = src[r * cols + c]. Concatenate
// along any axis is one such copy per input (rows = outer size, cols = axis length × inner size).
struct Params {
    rows: u32,
    cols: u32,
    dst_cols: u32,
    offset: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= params.rows * params.cols) {
        return;
    }
    let r = i / params.cols;
    let c = i % params.cols;
    dst[r * params.dst_cols + params.offset + c] = src[i];
}
