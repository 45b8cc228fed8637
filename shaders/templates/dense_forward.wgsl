// One dense layer on a batch of rows: z = a W + b, out = act(z) (identity, softplus or ReLU).
// Widths are padded to multiples of 4 (IN4, OUT4 count vec4s). Register blocking: each invocation
// computes TILE_ROWS rows × TILE_QUADS vec4s of outputs (${TILE_ROWS} × ${TILE_QUADS}), so per quad
// of inputs ${4 * TILE_QUADS} weight and ${TILE_ROWS} activation fetches feed ${4 * TILE_ROWS * TILE_QUADS} vec4 multiply-adds
// (fetches, not arithmetic, bound these kernels on lavapipe).
//# if SHARED
// dense_forward_shared: the same with the weights shared by a subgroup of 8 lanes (lavapipe's
// SIMD width), whose lanes take the same output quads and 8 × TILE_ROWS consecutive rows: per quad
// of inputs each lane fetches ${(4 * TILE_QUADS + 7) / 8} of the tile's ${4 * TILE_QUADS} weight vec4s and
// `subgroupBroadcast` hands every lane all of them (on lavapipe a fetch is per lane whatever its
// address, a broadcast one shuffle), so ${(4 * TILE_QUADS + 7) / 8 + TILE_ROWS} fetches feed ${4 * TILE_ROWS * TILE_QUADS} vec4 multiply-adds.
//# end

const TILE_ROWS: u32 = ${TILE_ROWS}u;
const TILE_QUADS: u32 = ${TILE_QUADS}u;

override ROWS: u32;
override IN4: u32;
override OUT4: u32;
override W_OFF4: u32;  // offset of this layer's (4·IN4 + 1, 4·OUT4) block, in vec4s; bias is its last row
override ACT: u32;     // 0 identity (output layer, or tangents: see tangent_act), 1 softplus, 2 ReLU
override BIAS_ROWS: u32; // rows that get the bias: all, or only the value channel of tangent rows

@group(0) @binding(0) var params: texture_2d<f32>;
@group(0) @binding(1) var a_in: texture_2d<f32>;        // (ROWS, IN4)
@group(0) @binding(2) var<storage, read_write> z_out: array<vec4<f32>>; // (ROWS, OUT4) pre-activation
@group(0) @binding(3) var<storage, read_write> a_out: array<vec4<f32>>; // (ROWS, OUT4) act(z)

//# if SHARED
@compute @workgroup_size(64)
fn dense_forward_shared(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    // Subgroup sg (of 8 lanes) takes output quads o0.. and rows r_base..r_base + 8·TILE_ROWS; a
    // whole subgroup returns or none of it (the broadcasts need every lane).
    let sg = flat_index(id, nwg) / WG * (WG / 8u) + sg_id;
    let o_tiles = (OUT4 + TILE_QUADS - 1u) / TILE_QUADS;
    let r_groups = (ROWS + 8u * TILE_ROWS - 1u) / (8u * TILE_ROWS);
    if (sg >= o_tiles * r_groups) {
        return;
    }
    let o0 = (sg % o_tiles) * TILE_QUADS;
    let r0 = (sg / o_tiles) * 8u * TILE_ROWS + lane * TILE_ROWS;
//# end
//# if 1 - SHARED
@compute @workgroup_size(64)
fn dense_forward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let o_tiles = (OUT4 + TILE_QUADS - 1u) / TILE_QUADS;
    let r_tiles = (ROWS + TILE_ROWS - 1u) / TILE_ROWS;
    if (t >= o_tiles * r_tiles) {
        return;
    }
    let o0 = (t % o_tiles) * TILE_QUADS;
    let r0 = (t / o_tiles) * TILE_ROWS;
//# end
    // Clamped rows and output quads keep fetches in bounds; stores are guarded.
//# for c in 0..TILE_QUADS
    let oc${c} = min(o0 + ${c}u, OUT4 - 1u);
//# end
//# for r in 0..TILE_ROWS
    let ra${r} = min(r0 + ${r}u, ROWS - 1u) * IN4;
//# end
//# for c in 0..TILE_QUADS
    let bias${c} = ld4(params, W_OFF4 + 4u * IN4 * OUT4 + oc${c});
//# end
//# for r in 0..TILE_ROWS
//# for c in 0..TILE_QUADS
    var acc${r}_${c} = select(vec4<f32>(0.0), bias${c}, r0 + ${r}u < BIAS_ROWS);
//# end
//# end
    for (var iq = 0u; iq < IN4; iq++) {
        let wrow = W_OFF4 + 4u * iq * OUT4;
//# if SHARED
        // Weight vec4 k = 4-row i × TILE_QUADS + quad c; lane l fetches k = l + 8m.
//# for m in 0..(4 * TILE_QUADS + 7) / 8
        let k${m} = min(lane + ${8 * m}u, ${4 * TILE_QUADS - 1}u);
        let wf${m} = ld4(params, wrow + (k${m} / TILE_QUADS) * OUT4 + min(o0 + k${m} % TILE_QUADS, OUT4 - 1u));
//# end
//# for c in 0..TILE_QUADS
//# for i in 0..4
        let w${i}_${c} = subgroupBroadcast(wf${(i * TILE_QUADS + c) / 8}, ${(i * TILE_QUADS + c) % 8}u);
//# end
//# end
//# end
//# if 1 - SHARED
//# for c in 0..TILE_QUADS
//# for i in 0..4
        let w${i}_${c} = ld4(params, wrow + ${i}u * OUT4 + oc${c});
//# end
//# end
//# end
//# for r in 0..TILE_ROWS
        let x${r} = ld4(a_in, ra${r} + iq);
//# for c in 0..TILE_QUADS
        acc${r}_${c} += x${r}.x * w0_${c} + x${r}.y * w1_${c} + x${r}.z * w2_${c} + x${r}.w * w3_${c};
//# end
//# end
    }
    var accs: array<vec4<f32>, ${TILE_ROWS * TILE_QUADS}>;
//# for r in 0..TILE_ROWS
//# for c in 0..TILE_QUADS
    accs[${r * TILE_QUADS + c}] = acc${r}_${c};
//# end
//# end
    for (var rr = 0u; rr < TILE_ROWS; rr++) {
        let r = r0 + rr;
        if (r >= ROWS) {
            break;
        }
        for (var c = 0u; c < TILE_QUADS; c++) {
            let oq = o0 + c;
            if (oq < OUT4) {
                let z = accs[rr * TILE_QUADS + c];
                z_out[r * OUT4 + oq] = z;
                a_out[r * OUT4 + oq] = act4(z, ACT);
            }
        }
    }
}
