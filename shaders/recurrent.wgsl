// One time step of a recurrent layer, for every (batch row, unit): gate pre-activations are the
// precomputed input projection xw[b, step] (bias included) plus h·U (plus the recurrent bias of
// Keras GRUs), then the cell (spec §5.4):
//   CELL_SIMPLE: h' = act(z)
//   CELL_LSTM (i, f, c, o): c' = σ(f)·c + σ(i)·act(z_c), h' = σ(o)·act(c')
//   CELL_GRU_RESET_AFTER (z, r, h): h' = σ(z)·h + (1-σ(z))·act(x_h + σ(r)·(h·U_h + b_h))
//   CELL_GRU (TF.js, no reset_after): r = σ(x_r + h·U_r) for the whole row first (one
//          workgroup per row, r in workgroup memory), then h' = σ(z)·h + (1-σ(z))·act(x_h + (r∘h)·U_h)
// State buffers hold [h; c] ([2, batch, units]); steps alternate between two of them. At a
// masked step the state carries over. The step's output (h) goes to out[b, out_step] with row
// stride `out_stride` and column offset `col` (Bidirectional writes both halves into one
// output); without sequences out_step is 0 and the last step's write remains. `mask_reversed`
// reads the mask back to front (later cells of a backwards StackedRNNCells).
struct Params {
    batch: u32,
    units: u32,
    steps: u32,
    step: u32,
    out_step: u32,
    cell: u32,
    act: u32,
    gate_act: u32,
    has_mask: u32,
    _phase: u32,
    first: u32,
    out_stride: u32,
    col: u32,
    out_steps: u32,
    mask_reversed: u32,
    _pad: u32,
    pixels: u32,
    precomputed: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> xw: array<f32>;
@group(0) @binding(2) var<storage, read> rec: array<f32>;
@group(0) @binding(3) var<storage, read> rbias: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read> state_in: array<f32>;
@group(0) @binding(6) var<storage, read_write> state_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

// GRU (TF.js) reset gates of the workgroup's row: at most 4096 units (16 KiB, WebGPU's minimum
// workgroup storage).
var<workgroup> reset_gate: array<f32, 4096>;

fn h_prev(b: u32, k: u32) -> f32 {
    return select(state_in[b * params.units + k], 0.0, params.first != 0u);
}

fn c_prev(b: u32, j: u32) -> f32 {
    return select(state_in[(params.batch + b) * params.units + j], 0.0, params.first != 0u);
}

// Row of xw for state row `b` at the current step: rows are (image, step, pixel), one pixel for
// the dense layers.
fn x_row(b: u32) -> u32 {
    let p = params.pixels;
    return ((b / p) * params.steps + params.step) * p + b % p;
}

// x_g + h·U[:, g·u + j] (+ recurrent bias) for gate block g; with `precomputed` the recurrent
// product comes ready in `rec` ([rows, gates·u], ConvLSTM's recurrent convolution).
fn pre(b: u32, g: u32, j: u32, gates: u32) -> f32 {
    let u = params.units;
    let col = g * u + j;
    if (params.precomputed != 0u) {
        let hu = select(rec[b * gates * u + col], 0.0, params.first != 0u);
        return xw[x_row(b) * gates * u + col] + hu;
    }
    var acc = xw[x_row(b) * gates * u + col] + rbias[col];
    for (var k = 0u; k < u; k++) {
        acc = fma(h_prev(b, k), rec[k * gates * u + col], acc);
    }
    return acc;
}

// h·U_h[:, j] (+ b_h) without the input part (GRU reset_after).
fn rec_only(b: u32, j: u32) -> f32 {
    let u = params.units;
    let col = 2u * u + j;
    var acc = rbias[col];
    for (var k = 0u; k < u; k++) {
        acc = fma(h_prev(b, k), rec[k * 3u * u + col], acc);
    }
    return acc;
}

// Write one unit's new state and output; at a masked step the state carries over.
fn finish(b: u32, j: u32, h_new: f32, c_new: f32) {
    let u = params.units;
    var h = h_new;
    var c = c_new;
    let mask_step = select(params.step, params.steps - 1u - params.step, params.mask_reversed != 0u);
    if (params.has_mask != 0u && mask[(b / params.pixels) * params.steps + mask_step] == 0.0) {
        h = h_prev(b, j);
        c = c_prev(b, j);
    }
    state_out[b * u + j] = h;
    state_out[(params.batch + b) * u + j] = c;
    let p = params.pixels;
    let out_row = ((b / p) * params.out_steps + params.out_step) * p + b % p;
    out[out_row * params.out_stride + params.col + j] = h;
}

// TF.js's GRU: the candidate needs the reset gate of every unit, so one workgroup takes a whole
// row: the reset gates go to workgroup memory, then (after a barrier) the candidates.
fn gru_row(b: u32, li: u32) {
    let u = params.units;
    let live = b < params.batch;
    let per = (u + 63u) / 64u;
    for (var k = 0u; k < per; k++) {
        let j = k * 64u + li;
        if (live && j < u) {
            reset_gate[j] = activation(pre(b, 1u, j, 3u), params.gate_act);
        }
    }
    workgroupBarrier();
    for (var k = 0u; k < per; k++) {
        let j = k * 64u + li;
        if (live && j < u) {
            let z = activation(pre(b, 0u, j, 3u), params.gate_act);
            var acc = xw[x_row(b) * 3u * u + 2u * u + j];
            for (var m = 0u; m < u; m++) {
                acc = fma(reset_gate[m] * h_prev(b, m), rec[m * 3u * u + 2u * u + j], acc);
            }
            finish(b, j, z * h_prev(b, j) + (1.0 - z) * activation(acc, params.act), c_prev(b, j));
        }
    }
}

@compute @workgroup_size(64)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    if (params.cell == CELL_GRU) {
        gru_row(wg.x + wg.y * groups.x, li);
        return;
    }
    let i = gid.x + gid.y * groups.x * 64u;
    let u = params.units;
    if (i >= params.batch * u) {
        return;
    }
    let b = i / u;
    let j = i % u;
    var h = 0.0;
    var c = c_prev(b, j);
    switch params.cell {
        case CELL_SIMPLE: {
            h = activation(pre(b, 0u, j, 1u), params.act);
        }
        case CELL_LSTM: {
            let ig = activation(pre(b, 0u, j, 4u), params.gate_act);
            let fg = activation(pre(b, 1u, j, 4u), params.gate_act);
            let cc = activation(pre(b, 2u, j, 4u), params.act);
            let og = activation(pre(b, 3u, j, 4u), params.gate_act);
            c = fg * c + ig * cc;
            h = og * activation(c, params.act);
        }
        default: {
            let z = activation(pre(b, 0u, j, 3u), params.gate_act);
            let r = activation(pre(b, 1u, j, 3u), params.gate_act);
            let hh = activation(xw[x_row(b) * 3u * u + 2u * u + j] + r * rec_only(b, j), params.act);
            h = z * h_prev(b, j) + (1.0 - z) * hh;
        }
    }
    finish(b, j, h, c);
}
