// C[M×N] = act(A[M×K] · B[K×N] + bias[N]), row-major. Register-blocked: each invocation computes
// an 8×8 block straight from global memory (no workgroup memory), 64 invocations per workgroup
// (a 64×64 tile for wide outputs). On llvmpipe, which runs invocations as SIMD lanes, this measured ~3× faster
// than a 32×32 shared-memory tiling (design §7). Shapes are uniforms: one pipeline serves every
// Dense and convolution. `act` is an ACT_* id (src/gpu/ids.rs). Tiles past the last row (the
// grid's padding) return at once.
// A kernel too large to bind whole comes as blocks of rows (K): each dispatch reads A's columns
// `a_col & 0x7fffffff ..` (rows of A `lda` apart; 0: k) and, with the top bit of `a_col` set,
// adds C's current values (the earlier blocks' sum) before the bias and activation. A long K is
// also split so that no invocation loops more than 32768 times (lavapipe's llvmpipe ends every
// loop of an invocation after 65535 iterations in all, silently): B's rows then start at
// `b_first_row`.
struct Params {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    has_bias: u32,
    group_cols: u32,
    lda: u32,
    a_col: u32,
    col_groups: u32,
    b_first_row: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TM: u32 = 8u;
const TN: u32 = 8u;

// 64 invocations per workgroup, laid out as `group_cols` × (64 / group_cols) blocks: narrow
// outputs (a convolution with 16 filters) get tall tiles instead of idle lanes.
@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let gx = params.group_cols;
    // Workgroups are numbered row-major over (row tiles, `col_groups` column tiles) and laid out
    // on a 2D grid within the per-dimension dispatch limit (a 9M-column Dense needs 140k tiles).
    let flat = wg.x + wg.y * groups.x;
    let row0 = ((flat / params.col_groups) * (64u / gx) + li / gx) * TM;
    let col0 = ((flat % params.col_groups) * gx + li % gx) * TN;
    if (row0 >= params.m || col0 >= params.n) {
        return;
    }
    var acc: array<f32, 64>;
    for (var i = 0u; i < 64u; i++) {
        acc[i] = 0.0;
    }
    // Clamp reads at the edges (results outside M×N are never stored); row offsets and columns
    // are computed once, outside the k loop.
    var a_row: array<u32, 8>;
    var b_col: array<u32, 8>;
    let lda = select(params.k, params.lda, params.lda != 0u);
    let a_col = params.a_col & 0x7fffffffu;
    let accumulate = (params.a_col >> 31u) != 0u;
    for (var i = 0u; i < TM; i++) {
        a_row[i] = min(row0 + i, params.m - 1u) * lda + a_col;
    }
    for (var j = 0u; j < TN; j++) {
        b_col[j] = min(col0 + j, params.n - 1u);
    }
    var b_row = params.b_first_row * params.n;
    for (var kk = 0u; kk < params.k; kk++) {
        var av: array<f32, 8>;
        var bv: array<f32, 8>;
        for (var i = 0u; i < TM; i++) {
            av[i] = a[a_row[i] + kk];
        }
        for (var j = 0u; j < TN; j++) {
            bv[j] = b[b_row + b_col[j]];
        }
        for (var i = 0u; i < TM; i++) {
            for (var j = 0u; j < TN; j++) {
                acc[i * TN + j] = fma(av[i], bv[j], acc[i * TN + j]);
            }
        }
        b_row += params.n;
    }
    for (var i = 0u; i < TM; i++) {
        let r = row0 + i;
        for (var j = 0u; j < TN; j++) {
            let col = col0 + j;
            if (r < params.m && col < params.n) {
                var v = acc[i * TN + j];
                if (accumulate) {
                    v += c[r * params.n + col];
                }
                if (params.has_bias != 0u) {
                    v += bias[col];
                }
                c[r * params.n + col] = activation(v, params.act);
            }
        }
    }
}
