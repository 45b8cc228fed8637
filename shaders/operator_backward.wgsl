// Cotangent of the batch's network outputs from Π̂, with the reference's covariance rule
// (cot X = w Y G_Π / Q, cot Y = w X G_Π / Q, maths §2: `pair_cotangent` forms them per pair),
// pulled back through the operator's gathers (a CSR transpose built on the host, so each row is
// written by one invocation) and through the envelope: δ_f[r] = g_r Σ_{(q, side, c) ∈ row r} c ·
// cot_side[q].
// With SIGMA_COT (β = 1, the fused gradient) the Σ term joins it on the sample rows r < S: the
// VJP of Σ̂ with the fixed cotangent G_Σ, cot u[r, n] += (2/S) w_r Σ_m u[r, m] (G_Σ)_{mn} (none for
// a constant first output): over m ≤ n where G_Σ is upper triangular (SpIN's one-sided convention,
// maths §3, and every objective but one), over every m where step.sigma_full says it is full (the
// jointly nested objective's, maths §13).

override ROWS: u32;
override SAMPLES: u32;     // rows 0..SAMPLES enter Σ̂
override NEIG: u32;
override NEIG_PAD: u32;
override SIGMA_COT: u32;   // 1: add the Σ term's cotangent (β = 1)
override CONST_FIRST: u32; // 1: output 0 is the constant eigenfunction, which has no parameters
override ENV_MULT: u32;  // 1: multiply by the envelope (plain rows); 0: leave to tangent_envelope_backward

@group(0) @binding(0) var pair_cot: texture_2d<f32>;     // (PAIRS, 2, NEIG_PAD): cot X, cot Y
@group(0) @binding(1) var row_ptr: texture_2d<u32>;       // (ROWS + 1)
@group(0) @binding(2) var entries: texture_2d<u32>;       // (row_ptr[ROWS]) of (q, side, coef's bits, pad): side 0 feeds X[q], 1 Y[q]
@group(0) @binding(3) var step: texture_2d<f32>;          // Step: β, 2/S, 1/Q, sigma_full, then G_Π, G_Σ
@group(0) @binding(4) var env: texture_2d<f32>;          // (ROWS)
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;  // (ROWS, NEIG_PAD) cotangent on f
@group(0) @binding(6) var u: texture_2d<f32>;            // (ROWS, NEIG)
@group(0) @binding(7) var w: texture_2d<f32>;            // (SAMPLES) importance weights

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
    let scalars = ld4(step, 0u);   // β, 2/S, 1/Q, sigma_full
    var acc = 0.0;
    let e_end = ld1u(row_ptr, r + 1u);
    for (var e = ld1u(row_ptr, r); e < e_end; e++) {
        let entry = ld4u(entries, e);
        acc += bitcast<f32>(entry.z) * ld1(pair_cot, (2u * entry.x + entry.y) * NEIG_PAD + n);
    }
    let g = select(1.0, ld1(env, r), ENV_MULT == 1u);
    var out = g * acc;
    if (SIGMA_COT == 1u && r < SAMPLES && !(CONST_FIRST == 1u && n == 0u)) {
        // (U G_Σ)[r, n]; G_Σ follows G_Π in the step buffer.
        let top = select(n + 1u, NEIG, scalars.w > 0.5);
        var ug = 0.0;
        for (var m = 0u; m < top; m++) {
            ug += ld1(u, r * NEIG + m) * ld1(step, 4u + NEIG * NEIG + m * NEIG + n);
        }
        out = g * (acc + scalars.y * ld1(w, r) * ug);
    }
    delta[t] = out;
}
