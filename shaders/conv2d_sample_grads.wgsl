// Per-sample, per-output weight gradients of a conv2d layer for one chunk of samples (maths §9,
// order (a)): G[b, k, (dy, dx, i), o] = Σ_{y, x} δ[b, k, y, x, o] a[offset + b, s·y + dy − PAD_T,
// s·x + dx − PAD_L, i] and G[b, k, bias, o] = Σ_{y, x} δ[b, k, y, x, o], each (b, k) a whole
// padded block of LAYER4 vec4s that `jbar_samples` contracts. The same sums as
// conv2d_param_grad with one group per row, but each invocation owns two outputs k of one
// sample, so every activation load feeds both (8 accumulators: 2 k × 4 input channels × vec4
// of output channels).

override NEIG: u32;
override SAMPLES: u32;   // the chunk size
override IN_H: u32;
override IN_W: u32;
override CIN4: u32;
override OUT_H: u32;
override OUT_W: u32;
override COUT4: u32;
override K: u32;
override STRIDE: u32;
override PAD_T: u32;
override PAD_L: u32;
override LAYER4: u32;     // vec4s between (b, k) blocks

@group(0) @binding(0) var a_in: texture_2d<f32>;       // (rows, IN_H, IN_W, CIN4)
@group(0) @binding(1) var delta: texture_2d<f32>;      // (SAMPLES, NEIG, OUT_H, OUT_W, COUT4)
@group(0) @binding(2) var<storage, read_write> grad: array<vec4<f32>>; // (SAMPLES, NEIG, LAYER4)
@group(0) @binding(3) var<storage, read> chunk: Chunk;

@compute @workgroup_size(64)
fn conv2d_sample_grads(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let quads = K * K * CIN4 + 1u;
    let kpairs = (NEIG + 1u) / 2u;
    if (t >= SAMPLES * kpairs * quads * COUT4) {
        return;
    }
    let oq = t % COUT4;
    let rq = (t / COUT4) % quads;
    let kp = (t / (COUT4 * quads)) % kpairs;
    let b = t / (COUT4 * quads * kpairs);
    let k0 = 2u * kp;
    let k1 = min(k0 + 1u, NEIG - 1u);
    let is_bias = rq == K * K * CIN4;
    let tap = min(rq, K * K * CIN4 - 1u) / CIN4;
    let iq = rq % CIN4;
    let dy = tap / K;
    let dx = tap % K;
    let one = vec4<f32>(1.0, 0.0, 0.0, 0.0);
    let zero = vec4<f32>(0.0);
    var p0 = vec4<f32>(0.0);
    var p1 = vec4<f32>(0.0);
    var p2 = vec4<f32>(0.0);
    var p3 = vec4<f32>(0.0);
    var q0 = vec4<f32>(0.0);
    var q1 = vec4<f32>(0.0);
    var q2 = vec4<f32>(0.0);
    var q3 = vec4<f32>(0.0);
    let abase = (chunk.offset + b) * IN_H;
    let d0base = (b * NEIG + k0) * OUT_H;
    let d1base = (b * NEIG + k1) * OUT_H;
    for (var y = 0u; y < OUT_H; y++) {
        let iy = i32(y * STRIDE + dy) - i32(PAD_T);
        let y_in = iy >= 0 && iy < i32(IN_H);
        let arow = (abase + u32(clamp(iy, 0, i32(IN_H) - 1))) * IN_W;
        let r0 = (d0base + y) * OUT_W;
        let r1 = (d1base + y) * OUT_W;
        for (var x = 0u; x < OUT_W; x++) {
            let ix = i32(x * STRIDE + dx) - i32(PAD_L);
            let inside = y_in && ix >= 0 && ix < i32(IN_W);
            let v = ld4(a_in, (arow + u32(clamp(ix, 0, i32(IN_W) - 1))) * CIN4 + iq);
            let a = select(select(zero, v, inside), one, is_bias);
            let e0 = ld4(delta, (r0 + x) * COUT4 + oq);
            let e1 = ld4(delta, (r1 + x) * COUT4 + oq);
            p0 += a.x * e0;
            p1 += a.y * e0;
            p2 += a.z * e0;
            p3 += a.w * e0;
            q0 += a.x * e1;
            q1 += a.y * e1;
            q2 += a.z * e1;
            q3 += a.w * e1;
        }
    }
    let row = 4u * rq * COUT4 + oq;
    let base0 = (b * NEIG + k0) * LAYER4 + row;
    let base1 = (b * NEIG + k1) * LAYER4 + row;
    grad[base0] = p0;
    if (!is_bias) {
        grad[base0 + COUT4] = p1;
        grad[base0 + 2u * COUT4] = p2;
        grad[base0 + 3u * COUT4] = p3;
    }
    if (k1 != k0) {
        grad[base1] = q0;
        if (!is_bias) {
            grad[base1 + COUT4] = q1;
            grad[base1 + 2u * COUT4] = q2;
            grad[base1 + 3u * COUT4] = q3;
        }
    }
}
