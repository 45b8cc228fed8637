// One dense layer on a batch of rows: z = a W + b, out = act(z) (identity, softplus or ReLU).
// Widths are padded to multiples of 4 (IN4, OUT4 count vec4s). Each invocation computes 4 rows ×
// one vec4 of outputs: per step of 4 inputs, 4 activation and 4 weight vec4 loads feed 64
// multiply-adds.

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
    let r_tiles = (ROWS + 3u) / 4u;
    if (t >= OUT4 * r_tiles) {
        return;
    }
    let oq = t % OUT4;
    let r0 = (t / OUT4) * 4u;
    // Clamped rows keep loads in bounds; stores are guarded.
    let ra = vec4<u32>(r0, min(r0 + 1u, ROWS - 1u), min(r0 + 2u, ROWS - 1u), min(r0 + 3u, ROWS - 1u)) * IN4;
    let bias = ld4(params, W_OFF4 + 4u * IN4 * OUT4 + oq);
    let zero = vec4<f32>(0.0);
    var acc0 = select(zero, bias, r0 < BIAS_ROWS);
    var acc1 = select(zero, bias, r0 + 1u < BIAS_ROWS);
    var acc2 = select(zero, bias, r0 + 2u < BIAS_ROWS);
    var acc3 = select(zero, bias, r0 + 3u < BIAS_ROWS);
    for (var iq = 0u; iq < IN4; iq++) {
        let wrow = W_OFF4 + 4u * iq * OUT4 + oq;
        let w0 = ld4(params, wrow);
        let w1 = ld4(params, wrow + OUT4);
        let w2 = ld4(params, wrow + 2u * OUT4);
        let w3 = ld4(params, wrow + 3u * OUT4);
        let x0 = ld4(a_in, ra.x + iq);
        let x1 = ld4(a_in, ra.y + iq);
        let x2 = ld4(a_in, ra.z + iq);
        let x3 = ld4(a_in, ra.w + iq);
        acc0 += x0.x * w0 + x0.y * w1 + x0.z * w2 + x0.w * w3;
        acc1 += x1.x * w0 + x1.y * w1 + x1.z * w2 + x1.w * w3;
        acc2 += x2.x * w0 + x2.y * w1 + x2.z * w2 + x2.w * w3;
        acc3 += x3.x * w0 + x3.y * w1 + x3.z * w2 + x3.w * w3;
    }
    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var rr = 0u; rr < 4u; rr++) {
        let r = r0 + rr;
        if (r >= ROWS) {
            break;
        }
        let z = accs[rr];
        z_out[r * OUT4 + oq] = z;
        a_out[r * OUT4 + oq] = act4(z, ACT);
    }
}
