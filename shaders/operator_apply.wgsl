// A linear operator on the batch, as sparse gathers of network rows:
//   X[q] = Σ_t cx[q,t] ld1(u, rx[q,t]),   Y[q] = Σ_t cy[q,t] ld1(u, ry[q,t])     (Π̂ = (1/Q) Σ_q w_q X_q Y_qᵀ)
// e.g. a finite-difference Hamiltonian has X = u(x) and Y = Σ stencil coefficients × u(x ± εe_i),
// a kernel on pairs has X = u(x), Y = k(x, x′) u(x′).

struct Term {
    row: u32,
    coef: f32,
}

override PAIRS: u32;
override NEIG: u32;
override TX: u32;
override TY: u32;

@group(0) @binding(0) var u: texture_2d<f32>;            // (ROWS, NEIG)
@group(0) @binding(1) var<storage, read> x_terms: array<Term>;     // (PAIRS, TX)
@group(0) @binding(2) var<storage, read> y_terms: array<Term>;     // (PAIRS, TY)
@group(0) @binding(3) var<storage, read_write> xs: array<f32>;     // (PAIRS, NEIG)
@group(0) @binding(4) var<storage, read_write> ys: array<f32>;     // (PAIRS, NEIG)

@compute @workgroup_size(64)
fn operator_apply(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    if (t >= PAIRS * NEIG) {
        return;
    }
    let q = t / NEIG;
    let n = t % NEIG;
    var xv = 0.0;
    for (var s = 0u; s < TX; s++) {
        let term = x_terms[q * TX + s];
        xv += term.coef * ld1(u, term.row * NEIG + n);
    }
    var yv = 0.0;
    for (var s = 0u; s < TY; s++) {
        let term = y_terms[q * TY + s];
        yv += term.coef * ld1(u, term.row * NEIG + n);
    }
    xs[t] = xv;
    ys[t] = yv;
}
