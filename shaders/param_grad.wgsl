// Parameter gradient of a dense layer from back-propagated output cotangents, summed over rows:
// grad[W_io] = Σ_r a_in[r, i] δ[r, o],  grad[b_o] = Σ_r δ[r, o].
// The bias is row IN of the (IN + 1, OUT) block W;b, so it is the same loop with a_in = 1.
// Each invocation computes a 4×4 tile (4 inputs × 4 outputs) and overwrites grad.

override ROWS: u32;
override IN: u32;
override OUT: u32;
override W_OFF: u32;

@group(0) @binding(0) var<storage, read> a_in: array<f32>;       // (ROWS, IN)
@group(0) @binding(1) var<storage, read> delta: array<f32>;      // (ROWS, OUT)
@group(0) @binding(2) var<storage, read_write> grad: array<f32>; // (P)

@compute @workgroup_size(64)
fn param_grad(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let o_tiles = (OUT + 3u) / 4u;
    let i_tiles = (IN + 1u + 3u) / 4u;
    if (t >= o_tiles * i_tiles) {
        return;
    }
    let o0 = (t % o_tiles) * 4u;
    let i0 = (t / o_tiles) * 4u;
    let oc = vec4<u32>(min(o0, OUT - 1u), min(o0 + 1u, OUT - 1u), min(o0 + 2u, OUT - 1u), min(o0 + 3u, OUT - 1u));
    // Column IN is the bias' constant 1; indices past it are clamped and their results dropped.
    let ic = vec4<u32>(min(i0, IN), min(i0 + 1u, IN), min(i0 + 2u, IN), min(i0 + 3u, IN));
    let is_w = vec4<bool>(ic.x < IN, ic.y < IN, ic.z < IN, ic.w < IN);
    let icl = min(ic, vec4<u32>(IN - 1u));
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var r = 0u; r < ROWS; r++) {
        let d = vec4<f32>(delta[r * OUT + oc.x], delta[r * OUT + oc.y], delta[r * OUT + oc.z], delta[r * OUT + oc.w]);
        let ar = r * IN;
        let a = select(vec4<f32>(1.0), vec4<f32>(a_in[ar + icl.x], a_in[ar + icl.y], a_in[ar + icl.z], a_in[ar + icl.w]), is_w);
        acc0 += a.x * d;
        acc1 += a.y * d;
        acc2 += a.z * d;
        acc3 += a.w * d;
    }
    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var ii = 0u; ii < 4u; ii++) {
        let i = i0 + ii;
        if (i > IN) {
            break;
        }
        for (var oo = 0u; oo < 4u; oo++) {
            let o = o0 + oo;
            if (o >= OUT) {
                break;
            }
            grad[W_OFF + i * OUT + o] = accs[ii][oo];
        }
    }
}
