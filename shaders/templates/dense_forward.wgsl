// One dense layer on a batch of rows: z = a W + b, out = act(z) (identity, softplus or ReLU).
// Widths are padded to multiples of 4 (IN4, OUT4 count vec4s). Register blocking: each invocation
// computes TILE_ROWS rows × TILE_QUADS vec4s of outputs (${TILE_ROWS} × ${TILE_QUADS}), so per quad
// of inputs ${4 * TILE_QUADS} weight and ${TILE_ROWS} activation fetches feed ${4 * TILE_ROWS * TILE_QUADS} vec4 multiply-adds
// (fetches, not arithmetic, bound these kernels on lavapipe).

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
//# for c in 0..TILE_QUADS
//# for i in 0..4
        let w${i}_${c} = ld4(params, wrow + ${i}u * OUT4 + oc${c});
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
