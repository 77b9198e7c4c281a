// C[M×N] = act(A[M×K] · B[K×N] + bias[N]), row-major. 8×8 threads, 4×4 outputs per thread
// (32×32 tile), A and B tiles staged in workgroup memory (design §4). Shapes are uniforms, so
// one pipeline serves every Dense layer. `act` ids are those of activation() below.
struct Params {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    has_bias: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TILE: u32 = 32u;
const KT: u32 = 16u;
var<workgroup> tile_a: array<f32, 512>; // 32 rows × 16 k
var<workgroup> tile_b: array<f32, 512>; // 16 k × 32 cols

@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * TILE + lid.y * 4u;
    let col0 = wg.x * TILE + lid.x * 4u;
    let flat = lid.y * 8u + lid.x;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    for (var k0 = 0u; k0 < params.k; k0 += KT) {
        // 64 threads load 512 elements of each tile: 8 each.
        for (var e = 0u; e < 8u; e++) {
            let idx = flat * 8u + e;
            let ar = wg.y * TILE + idx / KT;
            let ak = k0 + idx % KT;
            tile_a[idx] = select(0.0, a[ar * params.k + ak], ar < params.m && ak < params.k);
            let bk = k0 + idx / TILE;
            let bc = wg.x * TILE + idx % TILE;
            tile_b[idx] = select(0.0, b[bk * params.n + bc], bk < params.k && bc < params.n);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = tile_a[(lid.y * 4u + i) * KT + kk];
                bv[i] = tile_b[kk * TILE + lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            let r = row0 + i;
            let col = col0 + j;
            if (r < params.m && col < params.n) {
                var v = acc[i * 4u + j];
                if (params.has_bias != 0u) {
                    v += bias[col];
                }
                c[r * params.n + col] = activation(v, params.act);
            }
        }
    }
}
