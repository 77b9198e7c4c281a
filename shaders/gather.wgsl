// out[i] = in[index[i]], or 0 where index[i] is 0xFFFFFFFF (padding). Layout layers (Permute,
// RepeatVector, ZeroPadding2D, Cropping2D, UpSampling2D) and the im2col step of convolutions are
// each one gather with an index map built for the input's shape.
struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= params.n) {
        return;
    }
    let j = index[i];
    dst[i] = select(src[j], 0.0, j == 0xFFFFFFFFu);
}
