// The Σ-Jacobian of one layer from per-sample, per-output gradients G_{b,k} (maths §9, order (a)),
// fused with the moving average, for one chunk of samples:
//   J̄[j,k,p] ← keep · J̄[j,k,p] + β (2/S) Σ_{b ∈ chunk} w_b u_{b,j} G[b,k,p]     j ≤ k
// keep = 1 − β on the chunk that comes first, 1 on later ones. Each invocation owns two vec4s
// of the layer's parameters, one k and four j's (4j' .. 4j' + 3, those ≤ k): per sample two G
// fetches and one of the four w·u (sens_init's `su`) feed eight vec4 multiply-adds.

override NEIG: u32;
override NEIG_PAD: u32;
override NJQ: u32;       // ⌈NEIG / 4⌉
override LAYER4: u32;    // the layer's padded block, in vec4s: the stride of G per (b, k)
override W_OFF4: u32;    // the layer's block in the parameter vector
override NPAR4: u32;     // the stride of one pair in jbar

@group(0) @binding(0) var g_bk: texture_2d<f32>;      // (chunk, NEIG, LAYER4)
@group(0) @binding(1) var su: texture_2d<f32>;        // (chunk, NEIG_PAD): w_b u_{b,j} (sens_init)
@group(0) @binding(2) var<storage, read> step: Step;           // β, 2/S, 1/Q, G_Π, G_Σ
@group(0) @binding(3) var<storage, read_write> jbar: array<vec4<f32>>; // (N(N+1)/2, NPAR4)
@group(0) @binding(4) var<storage, read> chunk: Chunk;

@compute @workgroup_size(64)
fn jbar_samples(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let pairs4 = (LAYER4 + 1u) / 2u;
    if (t >= NEIG * NJQ * pairs4) {
        return;
    }
    let p = (t % pairs4) * 2u;
    let p1 = min(p + 1u, LAYER4 - 1u);
    let jq = (t / pairs4) % NJQ;
    let k = t / (pairs4 * NJQ);
    let j0 = 4u * jq;
    if (j0 > k) {
        return;
    }
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var bcc0 = vec4<f32>(0.0);
    var bcc1 = vec4<f32>(0.0);
    var bcc2 = vec4<f32>(0.0);
    var bcc3 = vec4<f32>(0.0);
    for (var b = 0u; b < chunk.count; b++) {
        let gb = (b * NEIG + k) * LAYER4;
        let g = ld4(g_bk, gb + p);
        let h = ld4(g_bk, gb + p1);
        let s = ld4(su, (b * NEIG_PAD + j0) / 4u);
        acc0 += s.x * g;
        acc1 += s.y * g;
        acc2 += s.z * g;
        acc3 += s.w * g;
        bcc0 += s.x * h;
        bcc1 += s.y * h;
        bcc2 += s.z * h;
        bcc3 += s.w * h;
    }
    let nn = NEIG * NEIG;
    let beta = step.beta;
    let scale = beta * step.two_over_s;
    let keep = select(1.0, 1.0 - beta, chunk.first == 1u);
    var accs = array<vec4<f32>, 8>(acc0, acc1, acc2, acc3, bcc0, bcc1, bcc2, bcc3);
    for (var jj = 0u; jj < 4u; jj++) {
        let j = j0 + jj;
        if (j > k) {
            break;
        }
        let idx = (k * (k + 1u) / 2u + j) * NPAR4 + W_OFF4 + p;
        jbar[idx] = keep * jbar[idx] + scale * accs[jj];
        if (p + 1u < LAYER4) {
            jbar[idx + 1u] = keep * jbar[idx + 1u] + scale * accs[jj + 4u];
        }
    }
}
