// Pooling: out[r, c] = max or mean over w of src[index[(r * window + w) * channels + c]],
// skipping padded taps (index 0xFFFFFFFF; average pooling divides by the taps inside, as TF.js).
// Global pooling is the same with one window covering every position. `flags`: 1 max; 2 a
// masked mean (Keras 3's GlobalAveragePooling1D under a mask): each tap weighted by
// mask[j / channels] ([batch, steps]), divided by the mask's sum (0/0 is NaN, as Keras).
struct Params {
    rows: u32,
    window: u32,
    channels: u32,
    flags: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= params.rows * params.channels) {
        return;
    }
    let r = i / params.channels;
    let c = i % params.channels;
    let is_max = (params.flags & 1u) != 0u;
    let masked = (params.flags & 2u) != 0u;
    var acc = select(0.0, -3.4028235e38, is_max);
    var count = 0u;
    var weight = 0.0;
    for (var w = 0u; w < params.window; w++) {
        let j = index[(r * params.window + w) * params.channels + c];
        if (j != 0xFFFFFFFFu) {
            var v = src[j];
            if (masked) {
                let m = mask[j / params.channels];
                v = v * m;
                weight += m;
            }
            acc = select(acc + v, max(acc, v), is_max);
            count += 1u;
        }
    }
    if (masked) {
        dst[i] = acc / weight;
        return;
    }
    dst[i] = select(acc / f32(max(count, 1u)), acc, is_max);
}
