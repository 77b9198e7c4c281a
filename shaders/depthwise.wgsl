// Depthwise convolution over gathered windows: out[r, c*m + j] = act(bias + Σ_w
// src[index[(r*window + w)*channels + c]] * kernel[(w*channels + c)*m + j]), padded taps skipped.
struct Params {
    rows: u32,
    window: u32,
    channels: u32,
    multiplier: u32,
    has_bias: u32,
    act: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read> kernel: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    let out_channels = params.channels * params.multiplier;
    if (i >= params.rows * out_channels) {
        return;
    }
    let r = i / out_channels;
    let oc = i % out_channels;
    let c = oc / params.multiplier;
    let j = oc % params.multiplier;
    var acc = 0.0;
    for (var w = 0u; w < params.window; w++) {
        let s = index[(r * params.window + w) * params.channels + c];
        if (s != 0xFFFFFFFFu) {
            acc = fma(src[s], kernel[(w * params.channels + c) * params.multiplier + j], acc);
        }
    }
    if (params.has_bias != 0u) {
        acc += bias[oc];
    }
    dst[i] = activation(acc, params.act);
}
