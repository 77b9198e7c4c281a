// Pooling: out[r, c] = max or mean over w of src[index[(r * window + w) * channels + c]],
// skipping padded taps (index 0xFFFFFFFF; average pooling divides by the taps inside, as TF.js).
// Global pooling is the same with one window covering every position.
struct Params {
    rows: u32,
    window: u32,
    channels: u32,
    max: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= params.rows * params.channels) {
        return;
    }
    let r = i / params.channels;
    let c = i % params.channels;
    var acc = select(0.0, -3.4028235e38, params.max != 0u);
    var count = 0u;
    for (var w = 0u; w < params.window; w++) {
        let j = index[(r * params.window + w) * params.channels + c];
        if (j != 0xFFFFFFFFu) {
            let v = src[j];
            acc = select(acc + v, max(acc, v), params.max != 0u);
            count += 1u;
        }
    }
    dst[i] = select(acc / f32(max(count, 1u)), acc, params.max != 0u);
}
