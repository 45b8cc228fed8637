// Back-propagates output sensitivities through a dense layer into its input layer:
// δ_in[r, i] = act'(z_in[offset + r / ROW_DIV, i]) Σ_o W[i, o] δ_out[r, o].
// ROW_DIV = 1 for the batch VJP; ROW_DIV = N for the per-sample sensitivities, whose rows are
// (sample, output k) pairs of one chunk of samples that share the sample's pre-activations.
// Register blocking: each invocation computes 8 rows × 2 vec4s of inputs; per vec4 of outputs,
// 8 weight and 8 sensitivity fetches feed 64 dot products.

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

@compute @workgroup_size(64)
fn dense_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let i_tiles = (IN4 + 1u) / 2u;
    let r_tiles = (ROWS + 7u) / 8u;
    if (t >= i_tiles * r_tiles) {
        return;
    }
    let i0 = (t % i_tiles) * 2u;
    let r0 = (t / i_tiles) * 8u;
    let wrow0 = W_OFF4 + 4u * min(i0 + 0u, IN4 - 1u) * OUT4;
    let wrow1 = W_OFF4 + 4u * min(i0 + 1u, IN4 - 1u) * OUT4;
    let rd0 = min(r0 + 0u, ROWS - 1u) * OUT4;
    let rd1 = min(r0 + 1u, ROWS - 1u) * OUT4;
    let rd2 = min(r0 + 2u, ROWS - 1u) * OUT4;
    let rd3 = min(r0 + 3u, ROWS - 1u) * OUT4;
    let rd4 = min(r0 + 4u, ROWS - 1u) * OUT4;
    let rd5 = min(r0 + 5u, ROWS - 1u) * OUT4;
    let rd6 = min(r0 + 6u, ROWS - 1u) * OUT4;
    let rd7 = min(r0 + 7u, ROWS - 1u) * OUT4;
    var acc0_0 = vec4<f32>(0.0);
    var acc0_1 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0);
    var acc1_1 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0);
    var acc2_1 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0);
    var acc3_1 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0);
    var acc4_1 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0);
    var acc5_1 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0);
    var acc6_1 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0);
    var acc7_1 = vec4<f32>(0.0);
    for (var oq = 0u; oq < OUT4; oq++) {
        let w0_0 = ld4(params, wrow0 + 0u * OUT4 + oq);
        let w1_0 = ld4(params, wrow0 + 1u * OUT4 + oq);
        let w2_0 = ld4(params, wrow0 + 2u * OUT4 + oq);
        let w3_0 = ld4(params, wrow0 + 3u * OUT4 + oq);
        let w0_1 = ld4(params, wrow1 + 0u * OUT4 + oq);
        let w1_1 = ld4(params, wrow1 + 1u * OUT4 + oq);
        let w2_1 = ld4(params, wrow1 + 2u * OUT4 + oq);
        let w3_1 = ld4(params, wrow1 + 3u * OUT4 + oq);
        let d0 = ld4(delta_out, rd0 + oq);
        acc0_0 += vec4<f32>(dot(w0_0, d0), dot(w1_0, d0), dot(w2_0, d0), dot(w3_0, d0));
        acc0_1 += vec4<f32>(dot(w0_1, d0), dot(w1_1, d0), dot(w2_1, d0), dot(w3_1, d0));
        let d1 = ld4(delta_out, rd1 + oq);
        acc1_0 += vec4<f32>(dot(w0_0, d1), dot(w1_0, d1), dot(w2_0, d1), dot(w3_0, d1));
        acc1_1 += vec4<f32>(dot(w0_1, d1), dot(w1_1, d1), dot(w2_1, d1), dot(w3_1, d1));
        let d2 = ld4(delta_out, rd2 + oq);
        acc2_0 += vec4<f32>(dot(w0_0, d2), dot(w1_0, d2), dot(w2_0, d2), dot(w3_0, d2));
        acc2_1 += vec4<f32>(dot(w0_1, d2), dot(w1_1, d2), dot(w2_1, d2), dot(w3_1, d2));
        let d3 = ld4(delta_out, rd3 + oq);
        acc3_0 += vec4<f32>(dot(w0_0, d3), dot(w1_0, d3), dot(w2_0, d3), dot(w3_0, d3));
        acc3_1 += vec4<f32>(dot(w0_1, d3), dot(w1_1, d3), dot(w2_1, d3), dot(w3_1, d3));
        let d4 = ld4(delta_out, rd4 + oq);
        acc4_0 += vec4<f32>(dot(w0_0, d4), dot(w1_0, d4), dot(w2_0, d4), dot(w3_0, d4));
        acc4_1 += vec4<f32>(dot(w0_1, d4), dot(w1_1, d4), dot(w2_1, d4), dot(w3_1, d4));
        let d5 = ld4(delta_out, rd5 + oq);
        acc5_0 += vec4<f32>(dot(w0_0, d5), dot(w1_0, d5), dot(w2_0, d5), dot(w3_0, d5));
        acc5_1 += vec4<f32>(dot(w0_1, d5), dot(w1_1, d5), dot(w2_1, d5), dot(w3_1, d5));
        let d6 = ld4(delta_out, rd6 + oq);
        acc6_0 += vec4<f32>(dot(w0_0, d6), dot(w1_0, d6), dot(w2_0, d6), dot(w3_0, d6));
        acc6_1 += vec4<f32>(dot(w0_1, d6), dot(w1_1, d6), dot(w2_1, d6), dot(w3_1, d6));
        let d7 = ld4(delta_out, rd7 + oq);
        acc7_0 += vec4<f32>(dot(w0_0, d7), dot(w1_0, d7), dot(w2_0, d7), dot(w3_0, d7));
        acc7_1 += vec4<f32>(dot(w0_1, d7), dot(w1_1, d7), dot(w2_1, d7), dot(w3_1, d7));
    }
    var accs = array<vec4<f32>, 16>(acc0_0, acc0_1, acc1_0, acc1_1, acc2_0, acc2_1, acc3_0, acc3_1, acc4_0, acc4_1, acc5_0, acc5_1, acc6_0, acc6_1, acc7_0, acc7_1);
    for (var rr = 0u; rr < 8u; rr++) {
        let r = r0 + rr;
        if (r >= ROWS) {
            break;
        }
        for (var c = 0u; c < 2u; c++) {
            let iq = i0 + c;
            if (iq < IN4) {
                let d1 = act4_d1(ld4(z_in, (chunk.offset + r / ROW_DIV) * IN4 + iq), ACT_D1);
                delta_in[r * IN4 + iq] = d1 * accs[rr * 2u + c];
            }
        }
    }
}
