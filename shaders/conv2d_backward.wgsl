// The input VJP of a conv2d layer (a transposed convolution), for the batch VJP (ROW_DIV = 1) and
// for the per-sample sensitivities of one chunk (rows = (sample, k), ROW_DIV = N):
//   δ_in[r, iy, ix, i] = act'(ld4(z_in, offset + r / ROW_DIV, iy, ix, i))
//                        Σ_{dy, dx: y = (iy + PAD_T − dy) / s, x = (ix + PAD_L − dx) / s exact, in range}
//                        Σ_o W[dy, dx, i, o] δ_out[r, y, x, o].
// Each invocation computes 4 rows × one input pixel × one vec4 of input channels: per vec4 of
// output channels, 4 weight and 4 sensitivity loads feed 64 multiply-adds. Only the taps that
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
    let r_tiles = (ROWS + 3u) / 4u;
    if (t >= ipix * r_tiles * CIN4) {
        return;
    }
    let iq = t % CIN4;
    let r0 = ((t / CIN4) % r_tiles) * 4u;
    let pix = t / (CIN4 * r_tiles);
    let iy = pix / IN_W;
    let ix = pix % IN_W;
    let last = ROWS - 1u;
    let opix = OUT_H * OUT_W;
    let rs = vec4<u32>(r0, min(r0 + 1u, last), min(r0 + 2u, last), min(r0 + 3u, last)) * opix;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
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
            let wrow = W_OFF4 + 4u * ((dy * K + dx) * CIN4 + iq) * COUT4;
            for (var oq = 0u; oq < COUT4; oq++) {
                let w0 = ld4(params, wrow + oq);
                let w1 = ld4(params, wrow + COUT4 + oq);
                let w2 = ld4(params, wrow + 2u * COUT4 + oq);
                let w3 = ld4(params, wrow + 3u * COUT4 + oq);
                let d0 = ld4(delta_out, (rs.x + q) * COUT4 + oq);
                let d1 = ld4(delta_out, (rs.y + q) * COUT4 + oq);
                let d2 = ld4(delta_out, (rs.z + q) * COUT4 + oq);
                let d3 = ld4(delta_out, (rs.w + q) * COUT4 + oq);
                acc0 += vec4<f32>(dot(w0, d0), dot(w1, d0), dot(w2, d0), dot(w3, d0));
                acc1 += vec4<f32>(dot(w0, d1), dot(w1, d1), dot(w2, d1), dot(w3, d1));
                acc2 += vec4<f32>(dot(w0, d2), dot(w1, d2), dot(w2, d2), dot(w3, d2));
                acc3 += vec4<f32>(dot(w0, d3), dot(w1, d3), dot(w2, d3), dot(w3, d3));
            }
        }
    }
    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var rr = 0u; rr < 4u; rr++) {
        let r = r0 + rr;
        if (r >= ROWS) {
            break;
        }
        let zrow = (chunk.offset + r / ROW_DIV) * ipix + pix;
        delta_in[(r * ipix + pix) * CIN4 + iq] = act4_d1(ld4(z_in, zrow * CIN4 + iq), ACT_D1) * accs[rr];
    }
}
