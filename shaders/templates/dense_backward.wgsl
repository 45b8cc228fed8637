// Back-propagates output sensitivities through a dense layer into its input layer:
// δ_in[r, i] = act'(z_in[offset + r / ROW_DIV, i]) Σ_o W[i, o] δ_out[r, o].
// ROW_DIV = 1 for the batch VJP; ROW_DIV = N for the per-sample sensitivities, whose rows are
// (sample, output k) pairs of one chunk of samples that share the sample's pre-activations.
// Register blocking: each invocation computes TILE_ROWS rows × TILE_QUADS vec4s of inputs
// (${TILE_ROWS} × ${TILE_QUADS}); per vec4 of outputs, ${4 * TILE_QUADS} weight and ${TILE_ROWS} sensitivity fetches feed ${4 * TILE_ROWS * TILE_QUADS} dot products.
//# if SHARED
// dense_backward_shared: the weights shared by a subgroup of 8 lanes (see dense_forward_shared):
// per vec4 of outputs each lane fetches ${(4 * TILE_QUADS + 7) / 8} of the tile's ${4 * TILE_QUADS} weight vec4s and
// `subgroupBroadcast` hands every lane all of them.
//# end

const TILE_ROWS: u32 = ${TILE_ROWS}u;
const TILE_QUADS: u32 = ${TILE_QUADS}u;

override ROWS: u32;
override IN4: u32;
override OUT4: u32;
override W_OFF4: u32;
override ROW_DIV: u32;
override ACT_D1: u32;   // the input layer's activation code (0: plain Wᵀ product, also for tangent rows: see tangent_act_backward)

@group(0) @binding(0) var params: texture_2d<f32>;
@group(0) @binding(1) var delta_out: texture_2d<f32>;    // (ROWS, OUT4)
@group(0) @binding(2) var z_in: texture_2d<f32>;         // (offset + ROWS / ROW_DIV, IN4)
@group(0) @binding(3) var<storage, read_write> delta_in: array<vec4<f32>>; // (ROWS, IN4)
@group(0) @binding(4) var<storage, read> chunk: Chunk;                      // sample offset of z_in rows

//# if SHARED
@compute @workgroup_size(64)
fn dense_backward_shared(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    // Subgroup sg (of 8 lanes) takes input quads i0.. and rows r_base..r_base + 8·TILE_ROWS; a
    // whole subgroup returns or none of it (the broadcasts need every lane).
    let sg = flat_index(id, nwg) / WG * (WG / 8u) + sg_id;
    let i_tiles = (IN4 + TILE_QUADS - 1u) / TILE_QUADS;
    let r_groups = (ROWS + 8u * TILE_ROWS - 1u) / (8u * TILE_ROWS);
    if (sg >= i_tiles * r_groups) {
        return;
    }
    let i0 = (sg % i_tiles) * TILE_QUADS;
    let r0 = (sg / i_tiles) * 8u * TILE_ROWS + lane * TILE_ROWS;
//# end
//# if 1 - SHARED
@compute @workgroup_size(64)
fn dense_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let i_tiles = (IN4 + TILE_QUADS - 1u) / TILE_QUADS;
    let r_tiles = (ROWS + TILE_ROWS - 1u) / TILE_ROWS;
    if (t >= i_tiles * r_tiles) {
        return;
    }
    let i0 = (t % i_tiles) * TILE_QUADS;
    let r0 = (t / i_tiles) * TILE_ROWS;
//# end
//# for c in 0..TILE_QUADS
    let wrow${c} = W_OFF4 + 4u * min(i0 + ${c}u, IN4 - 1u) * OUT4;
//# end
//# for r in 0..TILE_ROWS
    let rd${r} = min(r0 + ${r}u, ROWS - 1u) * OUT4;
//# end
//# for r in 0..TILE_ROWS
//# for c in 0..TILE_QUADS
    var acc${r}_${c} = vec4<f32>(0.0);
//# end
//# end
    for (var oq = 0u; oq < OUT4; oq++) {
//# if SHARED
        // Weight vec4 k = 4-row i × TILE_QUADS + input quad c; lane l fetches k = l + 8m.
//# for m in 0..(4 * TILE_QUADS + 7) / 8
        let k${m} = min(lane + ${8 * m}u, ${4 * TILE_QUADS - 1}u);
        let wf${m} = ld4(params, W_OFF4 + 4u * min(i0 + k${m} % TILE_QUADS, IN4 - 1u) * OUT4 + (k${m} / TILE_QUADS) * OUT4 + oq);
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
        let w${i}_${c} = ld4(params, wrow${c} + ${i}u * OUT4 + oq);
//# end
//# end
//# end
//# for r in 0..TILE_ROWS
        let d${r} = ld4(delta_out, rd${r} + oq);
//# for c in 0..TILE_QUADS
        acc${r}_${c} += vec4<f32>(dot(w0_${c}, d${r}), dot(w1_${c}, d${r}), dot(w2_${c}, d${r}), dot(w3_${c}, d${r}));
//# end
//# end
    }
    var accs: array<vec4<f32>, ${TILE_ROWS * TILE_QUADS}>;
//# for r in 0..TILE_ROWS
//# for c in 0..TILE_QUADS
    accs[${r * TILE_QUADS + c}] = acc${r}_${c};
//# end
//# end
    let z_offset = chunk.offset;   // one storage load, not one per element
    for (var rr = 0u; rr < TILE_ROWS; rr++) {
        let r = r0 + rr;
        if (r >= ROWS) {
            break;
        }
        for (var c = 0u; c < TILE_QUADS; c++) {
            let iq = i0 + c;
            if (iq < IN4) {
                let d1 = act4_d1(ld4(z_in, (z_offset + r / ROW_DIV) * IN4 + iq), ACT_D1);
                delta_in[r * IN4 + iq] = d1 * accs[rr * TILE_QUADS + c];
            }
        }
    }
}
