// Dequantize uint8 / uint16 / float16 codes through a lookup table.
//
// TF.js decodes `q * scale + min` in double precision and rounds to float32 (int32 targets use
// Math.round), and float16 with a full IEEE conversion. A code has at most 65536 values, so the
// CPU evaluates that exact formula once per code into `lut` and this kernel gathers: the GPU
// result is bit-for-bit TF.js's by construction, with 2-4x fewer bytes uploaded.
struct Params {
    n: u32,     // elements in this chunk
    bits: u32,  // 8 or 16
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read> lut: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= params.n) {
        return;
    }
    var code: u32;
    if (params.bits == 8u) {
        code = (codes[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
    } else {
        code = (codes[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu;
    }
    out[i] = lut[code];
}
