// Scaled dot-product attention of Keras's MultiHeadAttention over projected heads:
// q [B, T, H, kd], k [B, S, H, kd], v [B, S, H, vd] -> out [B, T, H, vd], one invocation per
// output value. scores[s] = (q·scale)·k[s]; a position masked out (causal: s > t; sliding window:
// |t - s| >= window; attention_mask[b, t, s] <= 0.5; Keras mask of a self-attention input:
// mask[b, t] or mask[b, s] zero) scores -1e9, as Keras's masked Softmax; then softmax over s
// (max-subtracted) and the weighted sum of v. With flag 8 (Keras >= 3.10) a query that keeps no
// position gets 0, as Keras's masked Softmax zeroes masked positions.
struct Params {
    batch: u32,
    t: u32,
    s: u32,
    heads: u32,
    kd: u32,
    vd: u32,
    flags: u32, // 1 causal, 2 attention_mask, 4 keras mask (self-attention), 8 zero unattended
    window: u32, // 0: none
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> attention_mask: array<f32>;
@group(0) @binding(5) var<storage, read> keras_mask: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

fn kept(b: u32, t: u32, s: u32) -> bool {
    var keep = true;
    if ((params.flags & 1u) != 0u && s > t) {
        keep = false;
    }
    if (params.window != 0u && max(s, t) - min(s, t) >= params.window) {
        keep = false;
    }
    if ((params.flags & 2u) != 0u && attention_mask[(b * params.t + t) * params.s + s] <= 0.5) {
        keep = false;
    }
    if ((params.flags & 4u) != 0u
        && (keras_mask[b * params.t + t] == 0.0 || keras_mask[b * params.s + s] == 0.0)) {
        keep = false;
    }
    return keep;
}

fn score(b: u32, t: u32, h: u32, s: u32) -> f32 {
    if (!kept(b, t, s)) {
        return -1e9;
    }
    let qi = ((b * params.t + t) * params.heads + h) * params.kd;
    let ki = ((b * params.s + s) * params.heads + h) * params.kd;
    var dot = 0.0;
    for (var j = 0u; j < params.kd; j++) {
        dot = fma(q[qi + j] * params.scale, k[ki + j], dot);
    }
    return dot;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= params.batch * params.t * params.heads * params.vd) {
        return;
    }
    let d = i % params.vd;
    let h = (i / params.vd) % params.heads;
    let t = (i / (params.vd * params.heads)) % params.t;
    let b = i / (params.vd * params.heads * params.t);
    var top = -3.4e38;
    var attended = false;
    for (var s = 0u; s < params.s; s++) {
        top = max(top, score(b, t, h, s));
        attended = attended || kept(b, t, s);
    }
    if (!attended && (params.flags & 8u) != 0u) {
        out[i] = 0.0;
        return;
    }
    var total = 0.0;
    var acc = 0.0;
    for (var s = 0u; s < params.s; s++) {
        let p = exp(score(b, t, h, s) - top);
        total += p;
        acc = fma(p, v[((b * params.s + s) * params.heads + h) * params.vd + d], acc);
    }
    out[i] = acc / total;
}
