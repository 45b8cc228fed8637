// One conv2d layer (NHWC, channels padded to multiples of 4) on a batch of images, as an
// implicit GEMM: z[r, y, x, o] = b[o] + Σ_{dy, dx, i} W[dy, dx, i, o] a[r, s·y + dy − PAD_T,
// s·x + dx − PAD_L, i] (zero outside the image, TensorFlow's SAME/VALID offsets), out = act(z).
// The weights are the layer's (K·K·CIN4·4 + 1, COUT4·4) block, rows (dy, dx, i), bias last.
// Each invocation computes TILE_PIXELS (${TILE_PIXELS}) consecutive output pixels (of one image or across
// images) × one vec4 of output channels: per input quad, 4 weight and ${TILE_PIXELS} activation vec4 loads feed
// ${16 * TILE_PIXELS} multiply-adds, as in dense_forward.

const TILE_PIXELS: u32 = ${TILE_PIXELS}u;

override ROWS: u32;    // images
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
override ACT: u32;     // 0 identity, 1 softplus, 2 ReLU

@group(0) @binding(0) var params: texture_2d<f32>;
@group(0) @binding(1) var a_in: texture_2d<f32>;        // (ROWS, IN_H, IN_W, CIN4)
@group(0) @binding(2) var<storage, read_write> z_out: array<vec4<f32>>; // (ROWS, OUT_H, OUT_W, COUT4)
@group(0) @binding(3) var<storage, read_write> a_out: array<vec4<f32>>; // same, act(z)

// The input vec4 index of tap (dy, dx) for output pixel p (a flat (row, y, x) index), or −1.
fn tap_index(p: u32, dy: u32, dx: u32) -> i32 {
    let opix = OUT_H * OUT_W;
    let r = p / opix;
    let q = p % opix;
    let iy = i32((q / OUT_W) * STRIDE + dy) - i32(PAD_T);
    let ix = i32((q % OUT_W) * STRIDE + dx) - i32(PAD_L);
    if (iy < 0 || ix < 0 || iy >= i32(IN_H) || ix >= i32(IN_W)) {
        return -1;
    }
    return i32(((r * IN_H + u32(iy)) * IN_W + u32(ix)) * CIN4);
}

fn load_in(base: i32, iq: u32) -> vec4<f32> {
    if (base < 0) {
        return vec4<f32>(0.0);
    }
    return ld4(a_in, u32(base) + iq);
}

@compute @workgroup_size(64)
fn conv2d_forward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let pixels = ROWS * OUT_H * OUT_W;
    let p_tiles = (pixels + TILE_PIXELS - 1u) / TILE_PIXELS;
    if (t >= COUT4 * p_tiles) {
        return;
    }
    let oq = t % COUT4;
    let p0 = (t / COUT4) * TILE_PIXELS;
    let last = pixels - 1u;
    // Clamped pixels keep loads in bounds; stores are guarded.
//# for p in 0..TILE_PIXELS
    let ps${p} = min(p0 + ${p}u, last);
//# end
    let bias = ld4(params, W_OFF4 + 4u * K * K * CIN4 * COUT4 + oq);
//# for p in 0..TILE_PIXELS
    var acc${p} = bias;
//# end
    for (var dy = 0u; dy < K; dy++) {
        for (var dx = 0u; dx < K; dx++) {
//# for p in 0..TILE_PIXELS
            let b${p} = tap_index(ps${p}, dy, dx);
//# end
            let tap_row = (dy * K + dx) * CIN4;
            for (var iq = 0u; iq < CIN4; iq++) {
                let wrow = W_OFF4 + 4u * (tap_row + iq) * COUT4 + oq;
                let w0 = ld4(params, wrow);
                let w1 = ld4(params, wrow + COUT4);
                let w2 = ld4(params, wrow + 2u * COUT4);
                let w3 = ld4(params, wrow + 3u * COUT4);
//# for p in 0..TILE_PIXELS
                let x${p} = load_in(b${p}, iq);
//# end
//# for p in 0..TILE_PIXELS
                acc${p} += x${p}.x * w0 + x${p}.y * w1 + x${p}.z * w2 + x${p}.w * w3;
//# end
            }
        }
    }
    var accs: array<vec4<f32>, ${TILE_PIXELS}>;
//# for p in 0..TILE_PIXELS
    accs[${p}] = acc${p};
//# end
    for (var pp = 0u; pp < TILE_PIXELS; pp++) {
        let p = p0 + pp;
        if (p >= pixels) {
            break;
        }
        let z = accs[pp];
        z_out[p * COUT4 + oq] = z;
        a_out[p * COUT4 + oq] = act4(z, ACT);
    }
}
