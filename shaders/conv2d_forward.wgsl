// One conv2d layer (NHWC, channels padded to multiples of 4) on a batch of images, as an
// implicit GEMM: z[r, y, x, o] = b[o] + Σ_{dy, dx, i} W[dy, dx, i, o] a[r, s·y + dy − PAD_T,
// s·x + dx − PAD_L, i] (zero outside the image, TensorFlow's SAME/VALID offsets), out = act(z).
// The weights are the layer's (K·K·CIN4·4 + 1, COUT4·4) block, rows (dy, dx, i), bias last.
// Each invocation computes 4 consecutive output pixels (of one image or across images) × one
// vec4 of output channels: per input quad, 4 weight and 4 activation vec4 loads feed 64
// multiply-adds, as in dense_forward.

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
    let p_tiles = (pixels + 3u) / 4u;
    if (t >= COUT4 * p_tiles) {
        return;
    }
    let oq = t % COUT4;
    let p0 = (t / COUT4) * 4u;
    let last = pixels - 1u;
    let ps = vec4<u32>(p0, min(p0 + 1u, last), min(p0 + 2u, last), min(p0 + 3u, last));
    let bias = ld4(params, W_OFF4 + 4u * K * K * CIN4 * COUT4 + oq);
    var acc0 = bias;
    var acc1 = bias;
    var acc2 = bias;
    var acc3 = bias;
    for (var dy = 0u; dy < K; dy++) {
        for (var dx = 0u; dx < K; dx++) {
            let b0 = tap_index(ps.x, dy, dx);
            let b1 = tap_index(ps.y, dy, dx);
            let b2 = tap_index(ps.z, dy, dx);
            let b3 = tap_index(ps.w, dy, dx);
            let tap_row = (dy * K + dx) * CIN4;
            for (var iq = 0u; iq < CIN4; iq++) {
                let wrow = W_OFF4 + 4u * (tap_row + iq) * COUT4 + oq;
                let w0 = ld4(params, wrow);
                let w1 = ld4(params, wrow + COUT4);
                let w2 = ld4(params, wrow + 2u * COUT4);
                let w3 = ld4(params, wrow + 3u * COUT4);
                let x0 = load_in(b0, iq);
                let x1 = load_in(b1, iq);
                let x2 = load_in(b2, iq);
                let x3 = load_in(b3, iq);
                acc0 += x0.x * w0 + x0.y * w1 + x0.z * w2 + x0.w * w3;
                acc1 += x1.x * w0 + x1.y * w1 + x1.z * w2 + x1.w * w3;
                acc2 += x2.x * w0 + x2.y * w1 + x2.z * w2 + x2.w * w3;
                acc3 += x3.x * w0 + x3.y * w1 + x3.z * w2 + x3.w * w3;
            }
        }
    }
    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var pp = 0u; pp < 4u; pp++) {
        let p = p0 + pp;
        if (p >= pixels) {
            break;
        }
        let z = accs[pp];
        z_out[p * COUT4 + oq] = z;
        a_out[p * COUT4 + oq] = act4(z, ACT);
    }
}
