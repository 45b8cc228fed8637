// Parameter gradient of a dense layer from back-propagated output cotangents, summed over rows:
// grad[W_io] = Σ_r ld4(a_in, r, i) δ[r, o],  grad[b_o] = Σ_r δ[r, o].
// The bias is row 4·IN4 of the layer's block, i.e. the same loop with a_in = 1 (input quad IN4)
// on the value rows (the first BIAS_ROWS) only.
// Each invocation computes IQ (${IQ}) quads of inputs × OQ (${OQ}) vec4s of outputs and overwrites
// its block: per row IQ + OQ texel fetches feed 4·IQ·OQ vec4 multiply-adds. `param_grad` is
// 1 × 1 (many invocations: lavapipe's thread pool and a GPU keep busy); `param_grad_wide` is
// 2 × 2, for a single-threaded lavapipe (worker processes), where fetches, not idle threads,
// bound the kernel. Split-K: the rows may be cut into GROUPS groups of GROUP_ROWS (the last one
// shorter), each summed into a block of its own (OUT_OFF4 + g·G_STRIDE4), which `grad_reduce`
// then adds up; with one group the block is the layer's place in grad.
//# if SHARED
// `param_grad_shared` (lavapipe): a subgroup of 8 lanes takes one tile of input quads and 8 tiles
// of outputs, one per lane, and walks the rows 8 at a time: lane l fetches row r0 + l's input
// quads once and `subgroupBroadcast` hands them to every lane, so per 8 rows a lane makes
// ${IQ} + 8 × ${OQ} fetches instead of 8 × ${IQ + OQ}.
//# end

override ROWS: u32;
override IN4: u32;
override OUT4: u32;
override BIAS_ROWS: u32;  // rows that carry the bias (the value channel of tangent rows)
override GROUPS: u32;     // row groups
override GROUP_ROWS: u32; // rows per group
override OUT_OFF4: u32;   // group 0's block in grad, in vec4s
override G_STRIDE4: u32;  // vec4s between groups' blocks

@group(0) @binding(0) var a_in: texture_2d<f32>;       // (ROWS, IN4)
@group(0) @binding(1) var delta: texture_2d<f32>;      // (ROWS, OUT4)
@group(0) @binding(2) var<storage, read_write> grad: array<vec4<f32>>; // (P_pad / 4), or the groups' blocks

@compute @workgroup_size(64)
//# if 1 - WIDE - SHARED
fn param_grad(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
//# end
//# if WIDE
fn param_grad_wide(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
//# end
//# if 1 - SHARED
    let t = flat_index(id, nwg);
    let in_tiles = (IN4 + ${IQ}u) / ${IQ}u;     // input quads 0 … IN4 (the bias)
    let out_tiles = (OUT4 + ${OQ - 1}u) / ${OQ}u;
    if (t >= GROUPS * in_tiles * out_tiles) {
        return;
    }
    let qout = (t % out_tiles) * ${OQ}u;
    let qin = ((t / out_tiles) % in_tiles) * ${IQ}u;
    let g = t / (in_tiles * out_tiles);
//# end
//# if SHARED
fn param_grad_shared(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    // t counts subgroups: groups × input tiles × groups of 8 output tiles (a whole subgroup
    // returns or none of it: the broadcasts need every lane).
    let t = flat_index(id, nwg) / WG * (WG / 8u) + sg_id;
    let in_tiles = (IN4 + ${IQ}u) / ${IQ}u;     // input quads 0 … IN4 (the bias)
    let out_tiles = (OUT4 + ${OQ - 1}u) / ${OQ}u;
    let out_groups = (out_tiles + 7u) / 8u;
    if (t >= GROUPS * in_tiles * out_groups) {
        return;
    }
    let qout = ((t % out_groups) * 8u + lane) * ${OQ}u;   // stores only where qout < OUT4
    let qin = ((t / out_groups) % in_tiles) * ${IQ}u;
    let g = t / (in_tiles * out_groups);
//# end
    let one = vec4<f32>(1.0, 0.0, 0.0, 0.0);
//# for a in 0..IQ
    let iq${a} = qin + ${a}u;
    let ia${a} = min(iq${a}, IN4 - 1u);
//# end
//# for b in 0..OQ
    let oc${b} = min(qout + ${b}u, OUT4 - 1u);
//# end
//# for a in 0..IQ
//# for b in 0..OQ
//# for i in 0..4
    var acc${a}_${b}_${i} = vec4<f32>(0.0);
//# end
//# end
//# end
    // Only the value rows when every quad of the tile is the bias.
    let end = select(ROWS, min(ROWS, BIAS_ROWS), qin == IN4);
    let rows = min(end, (g + 1u) * GROUP_ROWS);
//# if SHARED
    for (var r0 = g * GROUP_ROWS; r0 < rows; r0 += 8u) {
        // Lane l's row; rows past the group's end contribute zeros.
        let rl = r0 + lane;
        let bias = select(vec4<f32>(0.0), one, rl < BIAS_ROWS);
        let live = rl < rows;
        let rc = min(rl, ROWS - 1u);
//# for a in 0..IQ
        let af${a} = select(select(select(ld4(a_in, rc * IN4 + ia${a}), bias, iq${a} == IN4), vec4<f32>(0.0), iq${a} > IN4), vec4<f32>(0.0), !live);
//# end
//# end
//# for lb in 0..1 + 7 * SHARED
//# if SHARED
        {
        let r = min(r0 + ${lb}u, ROWS - 1u);
//# for a in 0..IQ
        let a${a} = subgroupBroadcast(af${a}, ${lb}u);
//# end
//# end
//# if 1 - SHARED
    for (var r = g * GROUP_ROWS; r < rows; r++) {
        let bias = select(vec4<f32>(0.0), one, r < BIAS_ROWS);
//# for a in 0..IQ
        let a${a} = select(select(ld4(a_in, r * IN4 + ia${a}), bias, iq${a} == IN4), vec4<f32>(0.0), iq${a} > IN4);
//# end
//# end
//# for b in 0..OQ
        let d${b} = ld4(delta, r * OUT4 + oc${b});
//# end
//# for a in 0..IQ
//# for b in 0..OQ
//# for i in 0..4
        acc${a}_${b}_${i} += a${a}[${i}] * d${b};
//# end
//# end
//# end
//# if SHARED
        }
//# end
//# end
    }
    let block = OUT_OFF4 + g * G_STRIDE4;
//# for a in 0..IQ
//# for b in 0..OQ
    if (iq${a} <= IN4 && qout + ${b}u < OUT4) {
        let base = block + 4u * iq${a} * OUT4 + qout + ${b}u;
        grad[base] = acc${a}_${b}_0;
        if (iq${a} < IN4) {
//# for i in 1..4
            grad[base + ${i}u * OUT4] = acc${a}_${b}_${i};
//# end
        }
    }
//# end
//# end
}
