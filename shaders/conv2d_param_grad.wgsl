// Parameter gradients of a conv2d layer, summed over the rows of each group and every output
// pixel:  G[g, (dy, dx, i), o] = Σ_{r ∈ group g} Σ_{y, x} δ[r, y, x, o] a[offset + r / ROW_DIV,
// s·y + dy − PAD_T, s·x + dx − PAD_L, i],  G[g, bias, o] = Σ_r Σ_{y, x} δ[r, y, x, o].
// One group of all rows (GROUPS = 1, ROW_DIV = 1) is the batch VJP's gradient, written into the
// gradient vector at the layer's block; several groups of consecutive rows (split-K, the last
// group cut at ROWS) each write a whole padded block of their own, which `grad_reduce` adds up.
// Each invocation owns one group × 4 weight rows (one input quad of one tap) × one vec4 of
// output channels, and overwrites its entries.

override ROWS: u32;        // rows in all: the last group stops here
override GROUPS: u32;
override GROUP_ROWS: u32;
override ROW_DIV: u32;
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
override OUT_OFF4: u32;   // where group 0's block starts in `grad`, in vec4s
override G_STRIDE4: u32;  // vec4s between groups' blocks

@group(0) @binding(0) var a_in: texture_2d<f32>;       // (offset + rows / ROW_DIV, IN_H, IN_W, CIN4)
@group(0) @binding(1) var delta: texture_2d<f32>;      // (GROUPS·GROUP_ROWS, OUT_H, OUT_W, COUT4)
@group(0) @binding(2) var<storage, read_write> grad: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> chunk: Chunk;

@compute @workgroup_size(64)
fn conv2d_param_grad(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let quads = K * K * CIN4 + 1u;
    if (t >= GROUPS * quads * COUT4) {
        return;
    }
    let oq = t % COUT4;
    let rq = (t / COUT4) % quads;
    let g = t / (COUT4 * quads);
    let is_bias = rq == K * K * CIN4;
    let tap = min(rq, K * K * CIN4 - 1u) / CIN4;
    let iq = rq % CIN4;
    let dy = tap / K;
    let dx = tap % K;
    let opix = OUT_H * OUT_W;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let one = vec4<f32>(1.0, 0.0, 0.0, 0.0);
    let zero = vec4<f32>(0.0);
    for (var rr = 0u; rr < GROUP_ROWS; rr++) {
        let r = g * GROUP_ROWS + rr;
        if (r >= ROWS) {
            break;
        }
        let abase = (chunk.offset + r / ROW_DIV) * IN_H;
        let dbase = r * OUT_H;
        for (var y = 0u; y < OUT_H; y++) {
            let iy = i32(y * STRIDE + dy) - i32(PAD_T);
            let y_in = iy >= 0 && iy < i32(IN_H);
            let arow = (abase + u32(clamp(iy, 0, i32(IN_H) - 1))) * IN_W;
            let drow = (dbase + y) * OUT_W;
            for (var x = 0u; x < OUT_W; x++) {
                let d = ld4(delta, (drow + x) * COUT4 + oq);
                let ix = i32(x * STRIDE + dx) - i32(PAD_L);
                let inside = y_in && ix >= 0 && ix < i32(IN_W);
                // Branch-free: load a clamped pixel and zero it outside the image.
                let v = ld4(a_in, (arow + u32(clamp(ix, 0, i32(IN_W) - 1))) * CIN4 + iq);
                let a = select(select(zero, v, inside), one, is_bias);
                acc0 += a.x * d;
                acc1 += a.y * d;
                acc2 += a.z * d;
                acc3 += a.w * d;
            }
        }
    }
    let base = OUT_OFF4 + g * G_STRIDE4 + 4u * rq * COUT4 + oq;
    grad[base] = acc0;
    if (!is_bias) {
        grad[base + COUT4] = acc1;
        grad[base + 2u * COUT4] = acc2;
        grad[base + 3u * COUT4] = acc3;
    }
}
