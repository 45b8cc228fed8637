// One dense layer on a batch of rows: z = a W + b, out = act(z).
// Each invocation computes a 4×4 tile (4 rows × 4 outputs) so every weight and activation load
// feeds four multiply-adds.

override ROWS: u32;
override IN: u32;
override OUT: u32;
override W_OFF: u32;   // offset of this layer's W (IN, OUT) in params; b (OUT) follows it
override ACT: u32;     // 1: softplus; 0: identity (output layer)

@group(0) @binding(0) var<storage, read> params: array<f32>;
@group(0) @binding(1) var<storage, read> a_in: array<f32>;        // (ROWS, IN)
@group(0) @binding(2) var<storage, read_write> z_out: array<f32>; // (ROWS, OUT) pre-activation
@group(0) @binding(3) var<storage, read_write> a_out: array<f32>; // (ROWS, OUT) act(z)

@compute @workgroup_size(64)
fn dense_forward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let o_tiles = (OUT + 3u) / 4u;
    let r_tiles = (ROWS + 3u) / 4u;
    if (t >= o_tiles * r_tiles) {
        return;
    }
    let o0 = (t % o_tiles) * 4u;
    let r0 = (t / o_tiles) * 4u;
    // Clamped indices keep loads in bounds; the stores below are guarded.
    let oc = vec4<u32>(min(o0, OUT - 1u), min(o0 + 1u, OUT - 1u), min(o0 + 2u, OUT - 1u), min(o0 + 3u, OUT - 1u));
    let ra = vec4<u32>(min(r0, ROWS - 1u), min(r0 + 1u, ROWS - 1u), min(r0 + 2u, ROWS - 1u), min(r0 + 3u, ROWS - 1u)) * IN;
    let b_off = W_OFF + IN * OUT;
    let bias = vec4<f32>(params[b_off + oc.x], params[b_off + oc.y], params[b_off + oc.z], params[b_off + oc.w]);
    var acc0 = bias;
    var acc1 = bias;
    var acc2 = bias;
    var acc3 = bias;
    for (var i = 0u; i < IN; i++) {
        let wr = W_OFF + i * OUT;
        let w = vec4<f32>(params[wr + oc.x], params[wr + oc.y], params[wr + oc.z], params[wr + oc.w]);
        acc0 += a_in[ra.x + i] * w;
        acc1 += a_in[ra.y + i] * w;
        acc2 += a_in[ra.z + i] * w;
        acc3 += a_in[ra.w + i] * w;
    }
    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var rr = 0u; rr < 4u; rr++) {
        let r = r0 + rr;
        if (r >= ROWS) {
            break;
        }
        for (var oo = 0u; oo < 4u; oo++) {
            let o = o0 + oo;
            if (o >= OUT) {
                break;
            }
            let z = accs[rr][oo];
            z_out[r * OUT + o] = z;
            a_out[r * OUT + o] = select(z, softplus(z), ACT == 1u);
        }
    }
}
