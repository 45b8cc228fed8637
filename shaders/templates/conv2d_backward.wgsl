// The input VJP of a conv2d layer (a transposed convolution), for the batch VJP (ROW_DIV = 1) and
// for the per-sample sensitivities of one chunk (rows = (sample, k), ROW_DIV = N):
//   δ_in[r, iy, ix, i] = act'(ld4(z_in, offset + r / ROW_DIV, iy, ix, i))
//                        Σ_{dy, dx: y = (iy + PAD_T − dy) / s, x = (ix + PAD_L − dx) / s exact, in range}
//                        Σ_o W[dy, dx, i, o] δ_out[r, y, x, o].
// Register blocking: each invocation computes TILE_ROWS rows × one input pixel × TILE_QUADS vec4s
// of input channels (${TILE_ROWS} × ${TILE_QUADS}): per vec4 of output channels, ${4 * TILE_QUADS} weight and ${TILE_ROWS} sensitivity
// fetches feed ${16 * TILE_ROWS * TILE_QUADS} multiply-adds. Only the taps that hit an output pixel are visited
// (dy ≡ iy + PAD_T mod s), and neighbouring invocations share the pixel, so their loops have the
// same trip counts.

const TILE_ROWS: u32 = ${TILE_ROWS}u;
const TILE_QUADS: u32 = ${TILE_QUADS}u;

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
    let r_tiles = (ROWS + TILE_ROWS - 1u) / TILE_ROWS;
    let i_tiles = (CIN4 + TILE_QUADS - 1u) / TILE_QUADS;
    if (t >= ipix * r_tiles * i_tiles) {
        return;
    }
    let i0 = (t % i_tiles) * TILE_QUADS;
    let r0 = ((t / i_tiles) % r_tiles) * TILE_ROWS;
    let pix = t / (i_tiles * r_tiles);
    let iy = pix / IN_W;
    let ix = pix % IN_W;
    let last = ROWS - 1u;
    let opix = OUT_H * OUT_W;
//# for r in 0..TILE_ROWS
    let rs${r} = min(r0 + ${r}u, last) * opix;
//# end
//# for c in 0..TILE_QUADS
    let ic${c} = min(i0 + ${c}u, CIN4 - 1u);
//# end
//# for r in 0..TILE_ROWS
//# for c in 0..TILE_QUADS
    var acc${r}_${c} = vec4<f32>(0.0);
//# end
//# end
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
//# for c in 0..TILE_QUADS
            let wrow${c} = W_OFF4 + 4u * (tap + ic${c}) * COUT4;
//# end
            for (var oq = 0u; oq < COUT4; oq++) {
//# for c in 0..TILE_QUADS
//# for i in 0..4
                let w${i}_${c} = ld4(params, wrow${c} + ${i}u * COUT4 + oq);
//# end
//# end
//# for r in 0..TILE_ROWS
                let d${r} = ld4(delta_out, (rs${r} + q) * COUT4 + oq);
//# for c in 0..TILE_QUADS
                acc${r}_${c} += vec4<f32>(dot(w0_${c}, d${r}), dot(w1_${c}, d${r}), dot(w2_${c}, d${r}), dot(w3_${c}, d${r}));
//# end
//# end
            }
        }
    }
    var accs: array<vec4<f32>, ${TILE_ROWS * TILE_QUADS}>;
//# for r in 0..TILE_ROWS
//# for c in 0..TILE_QUADS
    accs[${r * TILE_QUADS + c}] = acc${r}_${c};
//# end
//# end
    for (var rr = 0u; rr < TILE_ROWS; rr++) {
        let r = r0 + rr;
        if (r >= ROWS) {
            break;
        }
        let zrow = (chunk.offset + r / ROW_DIV) * ipix + pix;
        for (var c = 0u; c < TILE_QUADS; c++) {
            let iq = i0 + c;
            if (iq < CIN4) {
                delta_in[(r * ipix + pix) * CIN4 + iq] = act4_d1(ld4(z_in, zrow * CIN4 + iq), ACT_D1) * accs[rr * TILE_QUADS + c];
            }
        }
    }
}
