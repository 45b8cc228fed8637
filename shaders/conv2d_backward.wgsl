// The input VJP of a conv2d layer (a transposed convolution), for the batch VJP (ROW_DIV = 1) and
// for the per-sample sensitivities of one chunk (rows = (sample, k), ROW_DIV = N):
//   δ_in[r, iy, ix, i] = act'(ld4(z_in, offset + r / ROW_DIV, iy, ix, i))
//                        Σ_{dy, dx: y = (iy + PAD_T − dy) / s, x = (ix + PAD_L − dx) / s exact, in range}
//                        Σ_o W[dy, dx, i, o] δ_out[r, y, x, o].
// Register blocking: each invocation computes 8 rows × one input pixel × 2 vec4s of input
// channels: per vec4 of output channels, 8 weight and 8 sensitivity fetches feed 256
// multiply-adds. Only the taps that
// hit an output pixel are visited (dy ≡ iy + PAD_T mod s), and neighbouring invocations share
// the pixel, so their loops have the same trip counts.

override ROWS: u32;
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
override W_OFF4: u32;
override ROW_DIV: u32;
override ACT_D1: u32;   // the input layer's activation code

@group(0) @binding(0) var params: texture_2d<f32>;
@group(0) @binding(1) var delta_out: texture_2d<f32>;      // (ROWS, OUT_H, OUT_W, COUT4)
@group(0) @binding(2) var z_in: texture_2d<f32>;           // (offset + ROWS / ROW_DIV, IN_H, IN_W, CIN4)
@group(0) @binding(3) var<storage, read_write> delta_in: array<vec4<f32>>; // (ROWS, IN_H, IN_W, CIN4)
@group(0) @binding(4) var<storage, read> chunk: Chunk;

@compute @workgroup_size(64)
fn conv2d_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let ipix = IN_H * IN_W;
    let r_tiles = (ROWS + 7u) / 8u;
    let i_tiles = (CIN4 + 1u) / 2u;
    if (t >= ipix * r_tiles * i_tiles) {
        return;
    }
    let i0 = (t % i_tiles) * 2u;
    let r0 = ((t / i_tiles) % r_tiles) * 8u;
    let pix = t / (i_tiles * r_tiles);
    let iy = pix / IN_W;
    let ix = pix % IN_W;
    let last = ROWS - 1u;
    let opix = OUT_H * OUT_W;
    let rs0 = min(r0 + 0u, last) * opix;
    let rs1 = min(r0 + 1u, last) * opix;
    let rs2 = min(r0 + 2u, last) * opix;
    let rs3 = min(r0 + 3u, last) * opix;
    let rs4 = min(r0 + 4u, last) * opix;
    let rs5 = min(r0 + 5u, last) * opix;
    let rs6 = min(r0 + 6u, last) * opix;
    let rs7 = min(r0 + 7u, last) * opix;
    let ic0 = min(i0 + 0u, CIN4 - 1u);
    let ic1 = min(i0 + 1u, CIN4 - 1u);
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
    let ty = iy + PAD_T;
    let tx = ix + PAD_L;
    for (var dy = ty % STRIDE; dy < K && dy <= ty; dy += STRIDE) {
        let y = (ty - dy) / STRIDE;
        if (y >= OUT_H) {
            continue;
        }
        for (var dx = tx % STRIDE; dx < K && dx <= tx; dx += STRIDE) {
            let x = (tx - dx) / STRIDE;
            if (x >= OUT_W) {
                continue;
            }
            let q = y * OUT_W + x;
            let tap = (dy * K + dx) * CIN4;
            let wrow0 = W_OFF4 + 4u * (tap + ic0) * COUT4;
            let wrow1 = W_OFF4 + 4u * (tap + ic1) * COUT4;
            for (var oq = 0u; oq < COUT4; oq++) {
                let w0_0 = ld4(params, wrow0 + 0u * COUT4 + oq);
                let w1_0 = ld4(params, wrow0 + 1u * COUT4 + oq);
                let w2_0 = ld4(params, wrow0 + 2u * COUT4 + oq);
                let w3_0 = ld4(params, wrow0 + 3u * COUT4 + oq);
                let w0_1 = ld4(params, wrow1 + 0u * COUT4 + oq);
                let w1_1 = ld4(params, wrow1 + 1u * COUT4 + oq);
                let w2_1 = ld4(params, wrow1 + 2u * COUT4 + oq);
                let w3_1 = ld4(params, wrow1 + 3u * COUT4 + oq);
                let d0 = ld4(delta_out, (rs0 + q) * COUT4 + oq);
                acc0_0 += vec4<f32>(dot(w0_0, d0), dot(w1_0, d0), dot(w2_0, d0), dot(w3_0, d0));
                acc0_1 += vec4<f32>(dot(w0_1, d0), dot(w1_1, d0), dot(w2_1, d0), dot(w3_1, d0));
                let d1 = ld4(delta_out, (rs1 + q) * COUT4 + oq);
                acc1_0 += vec4<f32>(dot(w0_0, d1), dot(w1_0, d1), dot(w2_0, d1), dot(w3_0, d1));
                acc1_1 += vec4<f32>(dot(w0_1, d1), dot(w1_1, d1), dot(w2_1, d1), dot(w3_1, d1));
                let d2 = ld4(delta_out, (rs2 + q) * COUT4 + oq);
                acc2_0 += vec4<f32>(dot(w0_0, d2), dot(w1_0, d2), dot(w2_0, d2), dot(w3_0, d2));
                acc2_1 += vec4<f32>(dot(w0_1, d2), dot(w1_1, d2), dot(w2_1, d2), dot(w3_1, d2));
                let d3 = ld4(delta_out, (rs3 + q) * COUT4 + oq);
                acc3_0 += vec4<f32>(dot(w0_0, d3), dot(w1_0, d3), dot(w2_0, d3), dot(w3_0, d3));
                acc3_1 += vec4<f32>(dot(w0_1, d3), dot(w1_1, d3), dot(w2_1, d3), dot(w3_1, d3));
                let d4 = ld4(delta_out, (rs4 + q) * COUT4 + oq);
                acc4_0 += vec4<f32>(dot(w0_0, d4), dot(w1_0, d4), dot(w2_0, d4), dot(w3_0, d4));
                acc4_1 += vec4<f32>(dot(w0_1, d4), dot(w1_1, d4), dot(w2_1, d4), dot(w3_1, d4));
                let d5 = ld4(delta_out, (rs5 + q) * COUT4 + oq);
                acc5_0 += vec4<f32>(dot(w0_0, d5), dot(w1_0, d5), dot(w2_0, d5), dot(w3_0, d5));
                acc5_1 += vec4<f32>(dot(w0_1, d5), dot(w1_1, d5), dot(w2_1, d5), dot(w3_1, d5));
                let d6 = ld4(delta_out, (rs6 + q) * COUT4 + oq);
                acc6_0 += vec4<f32>(dot(w0_0, d6), dot(w1_0, d6), dot(w2_0, d6), dot(w3_0, d6));
                acc6_1 += vec4<f32>(dot(w0_1, d6), dot(w1_1, d6), dot(w2_1, d6), dot(w3_1, d6));
                let d7 = ld4(delta_out, (rs7 + q) * COUT4 + oq);
                acc7_0 += vec4<f32>(dot(w0_0, d7), dot(w1_0, d7), dot(w2_0, d7), dot(w3_0, d7));
                acc7_1 += vec4<f32>(dot(w0_1, d7), dot(w1_1, d7), dot(w2_1, d7), dot(w3_1, d7));
            }
        }
    }
    var accs = array<vec4<f32>, 16>(acc0_0, acc0_1, acc1_0, acc1_1, acc2_0, acc2_1, acc3_0, acc3_1, acc4_0, acc4_1, acc5_0, acc5_1, acc6_0, acc6_1, acc7_0, acc7_1);
    for (var rr = 0u; rr < 8u; rr++) {
        let r = r0 + rr;
        if (r >= ROWS) {
            break;
        }
        let zrow = (chunk.offset + r / ROW_DIV) * ipix + pix;
        for (var c = 0u; c < 2u; c++) {
            let iq = i0 + c;
            if (iq < CIN4) {
                delta_in[(r * ipix + pix) * CIN4 + iq] = act4_d1(ld4(z_in, zrow * CIN4 + iq), ACT_D1) * accs[rr * 2u + c];
            }
        }
    }
}
