// Post-load weight scan: over the float32 words [offset, offset + len) of a weight buffer, count
// the non-finite values (exponent bits all ones: NaN or ±Inf, tested on the bits so no compiler
// can fold the test away) and the non-zero ones (+0 and -0 are zero), into counts[2·slot] and
// counts[2·slot + 1]. Each invocation reads PER words strided by the workgroup size; a workgroup
// adds its totals with one global atomic per counter.
struct Params {
    offset: u32,
    len: u32,
    slot: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> data: array<u32>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;

const PER: u32 = 64u;
var<workgroup> bad: atomic<u32>;
var<workgroup> nonzero: atomic<u32>;

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    if (li == 0u) {
        atomicStore(&bad, 0u);
        atomicStore(&nonzero, 0u);
    }
    workgroupBarrier();
    let base = (wg.x + wg.y * groups.x) * 64u * PER;
    var my_bad = 0u;
    var my_nonzero = 0u;
    for (var j = 0u; j < PER; j++) {
        let i = base + j * 64u + li;
        if (i < params.len) {
            let bits = data[params.offset + i];
            my_bad += select(0u, 1u, (bits & 0x7f800000u) == 0x7f800000u);
            my_nonzero += select(0u, 1u, (bits & 0x7fffffffu) != 0u);
        }
    }
    atomicAdd(&bad, my_bad);
    atomicAdd(&nonzero, my_nonzero);
    workgroupBarrier();
    if (li == 0u) {
        atomicAdd(&counts[2u * params.slot], atomicLoad(&bad));
        atomicAdd(&counts[2u * params.slot + 1u], atomicLoad(&nonzero));
    }
}
