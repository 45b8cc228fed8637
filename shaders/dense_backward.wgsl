// Back-propagates output sensitivities through a dense layer into its softplus input layer:
// δ_in[r, i] = σ'(z_in[r / ROW_DIV, i]) Σ_o W[i, o] δ_out[r, o].
// ROW_DIV = 1 for the batch VJP; ROW_DIV = N for the per-sample sensitivities, whose rows are
// (sample, output k) pairs that share the sample's pre-activations.
// Each invocation computes a 4×4 tile (4 rows × 4 inputs).

override ROWS: u32;
override IN: u32;
override OUT: u32;
override W_OFF: u32;
override ROW_DIV: u32;

@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read> delta_out: array<f32>;    // (ROWS, OUT)
@group(0) @binding(2) var<storage, read> z_in: array<f32>;         // (ROWS / ROW_DIV, IN)
@group(0) @binding(3) var<storage, read_write> delta_in: array<f32>; // (ROWS, IN)

@compute @workgroup_size(64)
fn dense_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let i_tiles = (IN + 3u) / 4u;
    let r_tiles = (ROWS + 3u) / 4u;
    if (t >= i_tiles * r_tiles) {
        return;
    }
    let i0 = (t % i_tiles) * 4u;
    let r0 = (t / i_tiles) * 4u;
    let ic = vec4<u32>(min(i0, IN - 1u), min(i0 + 1u, IN - 1u), min(i0 + 2u, IN - 1u), min(i0 + 3u, IN - 1u));
    let rd = vec4<u32>(min(r0, ROWS - 1u), min(r0 + 1u, ROWS - 1u), min(r0 + 2u, ROWS - 1u), min(r0 + 3u, ROWS - 1u)) * OUT;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let wr = W_OFF + ic * OUT;
    for (var o = 0u; o < OUT; o++) {
        let w = vec4<f32>(params[wr.x + o], params[wr.y + o], params[wr.z + o], params[wr.w + o]);
        acc0 += delta_out[rd.x + o] * w;
        acc1 += delta_out[rd.y + o] * w;
        acc2 += delta_out[rd.z + o] * w;
        acc3 += delta_out[rd.w + o] * w;
    }
    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var rr = 0u; rr < 4u; rr++) {
        let r = r0 + rr;
        if (r >= ROWS) {
            break;
        }
        let zr = (r / ROW_DIV) * IN;
        for (var ii = 0u; ii < 4u; ii++) {
            let i = i0 + ii;
            if (i >= IN) {
                break;
            }
            delta_in[r * IN + i] = softplus_d1(z_in[zr + i]) * accs[rr][ii];
        }
    }
}
