// The input VJP of a conv2d layer (a transposed convolution), for the batch VJP (ROW_DIV = 1) and
// for the per-sample sensitivities of one chunk (rows = (sample, k), ROW_DIV = N):
//   δ_in[r, iy, ix, i] = act'(z_in[offset + r / ROW_DIV, iy, ix, i])
//                        Σ_{dy, dx: y = (iy + PAD_T − dy) / s, x = (ix + PAD_L − dx) / s exact, in range}
//                        Σ_o W[dy, dx, i, o] δ_out[r, y, x, o].
// Each invocation computes one input pixel × one vec4 of input channels.

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

@group(0) @binding(0) var<storage, read> params: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> delta_out: array<vec4<f32>>;      // (ROWS, OUT_H, OUT_W, COUT4)
@group(0) @binding(2) var<storage, read> z_in: array<vec4<f32>>;           // (offset + ROWS / ROW_DIV, IN_H, IN_W, CIN4)
@group(0) @binding(3) var<storage, read_write> delta_in: array<vec4<f32>>; // (ROWS, IN_H, IN_W, CIN4)
@group(0) @binding(4) var<storage, read> chunk: Chunk;

@compute @workgroup_size(64)
fn conv2d_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let ipix = IN_H * IN_W;
    if (t >= ROWS * ipix * CIN4) {
        return;
    }
    let iq = t % CIN4;
    let p = t / CIN4;
    let r = p / ipix;
    let iy = (p % ipix) / IN_W;
    let ix = p % IN_W;
    var acc = vec4<f32>(0.0);
    for (var dy = 0u; dy < K; dy++) {
        let yy = i32(iy + PAD_T) - i32(dy);
        if (yy < 0 || u32(yy) % STRIDE != 0u || u32(yy) / STRIDE >= OUT_H) {
            continue;
        }
        let y = u32(yy) / STRIDE;
        for (var dx = 0u; dx < K; dx++) {
            let xx = i32(ix + PAD_L) - i32(dx);
            if (xx < 0 || u32(xx) % STRIDE != 0u || u32(xx) / STRIDE >= OUT_W) {
                continue;
            }
            let x = u32(xx) / STRIDE;
            let drow = ((r * OUT_H + y) * OUT_W + x) * COUT4;
            let wrow = W_OFF4 + 4u * ((dy * K + dx) * CIN4 + iq) * COUT4;
            for (var oq = 0u; oq < COUT4; oq++) {
                let d = delta_out[drow + oq];
                acc += vec4<f32>(
                    dot(params[wrow + oq], d),
                    dot(params[wrow + COUT4 + oq], d),
                    dot(params[wrow + 2u * COUT4 + oq], d),
                    dot(params[wrow + 3u * COUT4 + oq], d),
                );
            }
        }
    }
    let zrow = (chunk.offset + r / ROW_DIV) * ipix + iy * IN_W + ix;
    delta_in[t] = act4_d1(z_in[zrow * CIN4 + iq], ACT_D1) * acc;
}
