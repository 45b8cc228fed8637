// The one-sided Jacobian of Σ̂ for one dense layer, fused with its moving average and with the
// contraction against G_Σ (SPEC §3):
//   Ĵ[j,k,p]  = (2/S) Σ_b w_b u_{b,j} δ_{b,k,o} a_{b,i}      p = (i, o), j ≤ k   (a = 1 for the bias)
//   J̄[j,k,p] ← (1 − β) J̄[j,k,p] + β Ĵ[j,k,p]
//   grad[p]   += Σ_{j≤k} (G_Σ)_{jk} J̄[j,k,p]
// One invocation per parameter, so the gradient needs no atomics and nothing of size B×N×P exists.

override SAMPLES: u32;
override IN: u32;
override OUT: u32;
override NEIG: u32;
override W_OFF: u32;
override NPARAMS: u32;
override FIRST_K: u32;   // outputs below FIRST_K have no parameters in this block (0 for dense)

@group(0) @binding(0) var<storage, read> a_in: array<f32>;         // (ROWS, IN); rows 0..SAMPLES used
@group(0) @binding(1) var<storage, read> sens: array<f32>;         // (SAMPLES, NEIG, OUT)
@group(0) @binding(2) var<storage, read> u: array<f32>;            // (ROWS, NEIG)
@group(0) @binding(3) var<storage, read> w: array<f32>;            // (SAMPLES) importance weights
@group(0) @binding(4) var<storage, read> gmat: array<f32>;         // G_Π (N,N), G_Σ (N,N), β, 2/S, 1/Q
@group(0) @binding(5) var<storage, read_write> jbar: array<f32>;   // (N(N+1)/2, NPARAMS)
@group(0) @binding(6) var<storage, read_write> grad: array<f32>;   // (NPARAMS)

const MAX_NEIG: u32 = 64u;

@compute @workgroup_size(64)
fn jbar_update(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    if (t >= (IN + 1u) * OUT) {
        return;
    }
    let i = t / OUT;
    let o = t % OUT;
    let p = W_OFF + t;
    let is_w = i < IN;
    let il = min(i, IN - 1u);
    let nn = NEIG * NEIG;
    let beta = gmat[2u * nn];
    let scale = gmat[2u * nn + 1u];
    var g = 0.0;
    var acc: array<f32, MAX_NEIG>;
    for (var k = FIRST_K; k < NEIG; k++) {
        for (var j = 0u; j <= k; j++) {
            acc[j] = 0.0;
        }
        for (var b = 0u; b < SAMPLES; b++) {
            let a = select(1.0, a_in[b * IN + il], is_w);
            let s = w[b] * sens[(b * NEIG + k) * OUT + o] * a;
            let ub = b * NEIG;
            for (var j = 0u; j <= k; j++) {
                acc[j] += u[ub + j] * s;
            }
        }
        for (var j = 0u; j <= k; j++) {
            let idx = pair_index(j, k) * NPARAMS + p;
            let jb = (1.0 - beta) * jbar[idx] + beta * scale * acc[j];
            jbar[idx] = jb;
            g += gmat[nn + j * NEIG + k] * jb;
        }
    }
    grad[p] += g;
}
