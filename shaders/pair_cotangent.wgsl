// The covariance rule's cotangents of the operator's gathers (maths §2), once per pair:
// cot X[q] = w_q (Y G_Π)[q] / Q and cot Y[q] = w_q (X G_Π)[q] / Q, G_Π upper triangular, so that
// `operator_backward` only scatters them to the rows (every row of a pair's stencil reads the
// same two vectors instead of forming them again).

override PAIRS: u32;
override NEIG: u32;
override NEIG_PAD: u32;

@group(0) @binding(0) var xs: texture_2d<f32>;           // (PAIRS, NEIG)
@group(0) @binding(1) var ys: texture_2d<f32>;           // (PAIRS, NEIG)
@group(0) @binding(2) var wq: texture_2d<f32>;           // (PAIRS)
@group(0) @binding(3) var step: texture_2d<f32>;         // Step: β, 2/S, 1/Q, sigma_full, then G_Π, G_Σ
@group(0) @binding(4) var<storage, read_write> pair_cot: array<f32>; // (PAIRS, 2, NEIG_PAD): cot X, cot Y

@compute @workgroup_size(64)
fn pair_cotangent(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    if (t >= PAIRS * NEIG_PAD) {
        return;
    }
    let q = t / NEIG_PAD;
    let n = t % NEIG_PAD;
    let at = 2u * q * NEIG_PAD + n;
    if (n >= NEIG) {
        pair_cot[at] = 0.0;
        pair_cot[at + NEIG_PAD] = 0.0;
        return;
    }
    var yg = 0.0;
    var xg = 0.0;
    for (var m = 0u; m <= n; m++) {
        let g = ld1(step, 4u + m * NEIG + n);
        yg += ld1(ys, q * NEIG + m) * g;
        xg += ld1(xs, q * NEIG + m) * g;
    }
    let scale = ld1(wq, q) * ld4(step, 0u).z;
    pair_cot[at] = scale * yg;
    pair_cot[at + NEIG_PAD] = scale * xg;
}
