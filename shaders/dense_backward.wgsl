// Back-propagates output sensitivities through a dense layer into its input layer:
// δ_in[r, i] = act'(ld4(z_in, offset + r / ROW_DIV, i)) Σ_o W[i, o] δ_out[r, o].
// ROW_DIV = 1 for the batch VJP; ROW_DIV = N for the per-sample sensitivities, whose rows are
// (sample, output k) pairs of one chunk of samples that share the sample's pre-activations.
// Each invocation computes 4 rows × one vec4 of inputs; per vec4 of outputs, 4 sensitivity and
// 4 weight loads feed 16 dot products.

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
    let r_tiles = (ROWS + 3u) / 4u;
    if (t >= IN4 * r_tiles) {
        return;
    }
    let iq = t % IN4;
    let r0 = (t / IN4) * 4u;
    let rd = vec4<u32>(r0, min(r0 + 1u, ROWS - 1u), min(r0 + 2u, ROWS - 1u), min(r0 + 3u, ROWS - 1u)) * OUT4;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let wrow = W_OFF4 + 4u * iq * OUT4;
    for (var oq = 0u; oq < OUT4; oq++) {
        let w0 = ld4(params, wrow + oq);
        let w1 = ld4(params, wrow + OUT4 + oq);
        let w2 = ld4(params, wrow + 2u * OUT4 + oq);
        let w3 = ld4(params, wrow + 3u * OUT4 + oq);
        let d0 = ld4(delta_out, rd.x + oq);
        let d1 = ld4(delta_out, rd.y + oq);
        let d2 = ld4(delta_out, rd.z + oq);
        let d3 = ld4(delta_out, rd.w + oq);
        acc0 += vec4<f32>(dot(w0, d0), dot(w1, d0), dot(w2, d0), dot(w3, d0));
        acc1 += vec4<f32>(dot(w0, d1), dot(w1, d1), dot(w2, d1), dot(w3, d1));
        acc2 += vec4<f32>(dot(w0, d2), dot(w1, d2), dot(w2, d2), dot(w3, d2));
        acc3 += vec4<f32>(dot(w0, d3), dot(w1, d3), dot(w2, d3), dot(w3, d3));
    }
    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var rr = 0u; rr < 4u; rr++) {
        let r = r0 + rr;
        if (r >= ROWS) {
            break;
        }
        let d1 = act4_d1(ld4(z_in, (chunk.offset + r / ROW_DIV) * IN4 + iq), ACT_D1);
        delta_in[r * IN4 + iq] = d1 * accs[rr];
    }
}
