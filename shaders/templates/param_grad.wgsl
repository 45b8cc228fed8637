// Parameter gradient of a dense layer from back-propagated output cotangents, summed over rows:
// grad[W_io] = Σ_r ld4(a_in, r, i) δ[r, o],  grad[b_o] = Σ_r δ[r, o].
// The bias is row 4·IN4 of the layer's block, i.e. the same loop with a_in = 1 (input quad IN4).
// Each invocation computes one quad of inputs (its four lanes) × one vec4 of outputs and
// overwrites its block. Split-K: the rows may be cut into GROUPS groups of GROUP_ROWS (the last
// one shorter), each summed into a block of its own (OUT_OFF4 + g·G_STRIDE4), which
// `grad_reduce` then adds up; with one group the block is the layer's place in grad.

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
fn param_grad(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    if (t >= GROUPS * (IN4 + 1u) * OUT4) {
        return;
    }
    let oq = t % OUT4;
    let iq = (t / OUT4) % (IN4 + 1u);
    let g = t / ((IN4 + 1u) * OUT4);
    let is_bias = iq == IN4;
    let ia = min(iq, IN4 - 1u);
//# for i in 0..4
    var acc${i} = vec4<f32>(0.0);
//# end
    let end = select(ROWS, min(ROWS, BIAS_ROWS), is_bias);
    let rows = min(end, (g + 1u) * GROUP_ROWS);
    for (var r = g * GROUP_ROWS; r < rows; r++) {
        let d = ld4(delta, r * OUT4 + oq);
        let a = select(ld4(a_in, r * IN4 + ia), vec4<f32>(1.0, 0.0, 0.0, 0.0), is_bias);
//# for i in 0..4
        acc${i} += a[${i}] * d;
//# end
    }
    let base = OUT_OFF4 + g * G_STRIDE4 + 4u * iq * OUT4 + oq;
    grad[base] = acc0;
    if (!is_bias) {
//# for i in 1..4
        grad[base + ${i}u * OUT4] = acc${i};
//# end
    }
}
