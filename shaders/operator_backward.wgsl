// Cotangent of the batch's network outputs from Π̂, with the reference's covariance rule
// (cot X = w Y G_Π / Q, cot Y = w X G_Π / Q, maths §2), pulled back through the operator's gathers
// (a CSR transpose built on the host, so each row is written by one invocation) and through the
// envelope: δ_f[r] = g_r Σ_{(q, side, c) ∈ row r} c · cot_side[q].
// With SIGMA_COT (β = 1, the fused gradient) the Σ term joins it on the sample rows r < S: the
// VJP of Σ̂ with the fixed cotangent G_Σ, cot u[r, n] += (2/S) w_r Σ_m u[r, m] (G_Σ)_{mn} (none for
// a constant first output): over m ≤ n where G_Σ is upper triangular (SpIN's one-sided convention,
// maths §3, and every objective but one), over every m where step.sigma_full says it is full (the
// jointly nested objective's, maths §13).

struct Entry {
    q: u32,
    side: u32,   // 0: the row feeds X[q]; 1: it feeds Y[q]
    coef: f32,
    pad: u32,
}

override ROWS: u32;
override SAMPLES: u32;     // rows 0..SAMPLES enter Σ̂
override NEIG: u32;
override NEIG_PAD: u32;
override SIGMA_COT: u32;   // 1: add the Σ term's cotangent (β = 1)
override CONST_FIRST: u32; // 1: output 0 is the constant eigenfunction, which has no parameters
override ENV_MULT: u32;  // 1: multiply by the envelope (plain rows); 0: leave to tangent_envelope_backward

@group(0) @binding(0) var xs: texture_2d<f32>;           // (PAIRS, NEIG)
@group(0) @binding(1) var ys: texture_2d<f32>;           // (PAIRS, NEIG)
@group(0) @binding(2) var wq: texture_2d<f32>;           // (PAIRS)
@group(0) @binding(3) var<storage, read> row_ptr: array<u32>;      // (ROWS + 1)
@group(0) @binding(4) var<storage, read> entries: array<Entry>;    // (row_ptr[ROWS])
@group(0) @binding(5) var<storage, read> step: Step;           // β, 2/S, 1/Q, G_Π, G_Σ
@group(0) @binding(6) var env: texture_2d<f32>;          // (ROWS)
@group(0) @binding(7) var<storage, read_write> delta: array<f32>;  // (ROWS, NEIG_PAD) cotangent on f
@group(0) @binding(8) var u: texture_2d<f32>;            // (ROWS, NEIG)
@group(0) @binding(9) var w: texture_2d<f32>;            // (SAMPLES) importance weights

@compute @workgroup_size(64)
fn operator_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    if (t >= ROWS * NEIG_PAD) {
        return;
    }
    let r = t / NEIG_PAD;
    let n = t % NEIG_PAD;
    if (n >= NEIG) {
        delta[t] = 0.0;
        return;
    }
    let inv_q = step.inv_q;
    var acc = 0.0;
    for (var e = row_ptr[r]; e < row_ptr[r + 1u]; e++) {
        let entry = entries[e];
        let other = entry.q * NEIG;
        // (Z G_Π)[q, n] = Σ_m Z[q, m] G_Π[m, n]; G_Π is upper triangular.
        var zg = 0.0;
        if (entry.side == 0u) {
            for (var m = 0u; m <= n; m++) {
                zg += ld1(ys, other + m) * step.g[m * NEIG + n];
            }
        } else {
            for (var m = 0u; m <= n; m++) {
                zg += ld1(xs, other + m) * step.g[m * NEIG + n];
            }
        }
        acc += entry.coef * ld1(wq, entry.q) * zg;
    }
    let g = select(1.0, ld1(env, r), ENV_MULT == 1u);
    var out = g * acc * inv_q;
    if (SIGMA_COT == 1u && r < SAMPLES && !(CONST_FIRST == 1u && n == 0u)) {
        // (U G_Σ)[r, n]; G_Σ follows G_Π in the step buffer.
        let top = select(n + 1u, NEIG, step.sigma_full > 0.5);
        var ug = 0.0;
        for (var m = 0u; m < top; m++) {
            ug += ld1(u, r * NEIG + m) * step.g[NEIG * NEIG + m * NEIG + n];
        }
        out = g * (acc * inv_q + step.two_over_s * ld1(w, r) * ug);
    }
    delta[t] = out;
}
