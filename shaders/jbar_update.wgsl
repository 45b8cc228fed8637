// The one-sided Jacobian of Σ̂ for one dense layer, fused with its moving average (SPEC §3):
//   Ĵ[j,k,p]  = (2/S) Σ_b w_b u_{b,j} δ_{b,k,o} a_{b,i}      p = (i, o), j ≤ k   (a = 1 for the bias)
//   J̄[j,k,p] ← (1 − β) J̄[j,k,p] + β Ĵ[j,k,p]
// A GEMM per pair (j, k): each invocation owns 4 inputs × one vec4 of outputs of one pair, so
// nothing of size B×N×P is formed and no N² backward passes run. `jbar_contract` then folds
// J̄ into the gradient. Samples come in chunks (bounded sensitivity buffers): b counts from the
// chunk's first sample, and only the first chunk applies the decay (1 − β); later ones add.

override IN4: u32;
override OUT4: u32;
override NEIG: u32;
override W_OFF4: u32;
override NPAR4: u32;   // padded parameter count / 4: the stride of one pair in jbar
override OUTPUT_LAYER: u32;  // 1: δ_{b,k,o} = g_b [o = k], so only the quad holding k is nonzero

@group(0) @binding(0) var<storage, read> a_in: array<vec4<f32>>;     // (ROWS, IN4); the samples' rows used
@group(0) @binding(1) var<storage, read> sens: array<vec4<f32>>;     // (chunk, NEIG, OUT4)
@group(0) @binding(2) var<storage, read> u: array<f32>;              // (ROWS, NEIG)
@group(0) @binding(3) var<storage, read> w: array<f32>;              // (S) importance weights
@group(0) @binding(4) var<storage, read> step: Step;           // β, 2/S, 1/Q, G_Π, G_Σ
@group(0) @binding(5) var<storage, read_write> jbar: array<vec4<f32>>; // (N(N+1)/2, NPAR4)
@group(0) @binding(6) var<storage, read> chunk: Chunk;

@compute @workgroup_size(64)
fn jbar_update(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let tiles = ((IN4 + 2u) / 2u) * OUT4;
    let pair = t / tiles;
    if (pair >= NEIG * (NEIG + 1u) / 2u) {
        return;
    }
    // Unpack pair = k(k+1)/2 + j.
    var k = u32((sqrt(8.0 * f32(pair) + 1.0) - 1.0) * 0.5);
    if ((k + 1u) * (k + 2u) / 2u <= pair) {
        k += 1u;
    }
    if (k * (k + 1u) / 2u > pair) {
        k -= 1u;
    }
    let j = pair - k * (k + 1u) / 2u;
    let tile = t % tiles;
    let oq = tile % OUT4;
    // Two input quads per invocation: quads q0 = 2·ip and q1 = 2·ip + 1 (quad IN4 is the bias).
    let q0 = (tile / OUT4) * 2u;
    let q1 = q0 + 1u;
    let l0 = min(q0, IN4 - 1u);
    let l1 = min(q1, IN4 - 1u);
    let one = vec4<f32>(1.0, 0.0, 0.0, 0.0);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    // On the output layer Ĵ[j,k] vanishes outside output k: those entries only decay.
    let offset = chunk.offset;
    let samples = select(chunk.count, 0u, OUTPUT_LAYER == 1u && oq != k / 4u);
    for (var b = 0u; b < samples; b++) {
        let bs = offset + b;
        let s = w[bs] * u[bs * NEIG + j];
        let d = s * sens[(b * NEIG + k) * OUT4 + oq];
        let a = select(a_in[bs * IN4 + l0], one, q0 == IN4);
        let c = select(select(a_in[bs * IN4 + l1], one, q1 == IN4), vec4<f32>(0.0), q1 > IN4);
        acc0 += a.x * d;
        acc1 += a.y * d;
        acc2 += a.z * d;
        acc3 += a.w * d;
        acc4 += c.x * d;
        acc5 += c.y * d;
        acc6 += c.z * d;
        acc7 += c.w * d;
    }
    let nn = NEIG * NEIG;
    let beta = step.beta;
    let scale = beta * step.two_over_s;
    let keep = select(1.0, 1.0 - beta, chunk.first == 1u);
    var accs = array<vec4<f32>, 8>(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7);
    // Rows of the layer's block this invocation owns: 4·q0 .. 4·q0 + 7, up to the bias row 4·IN4.
    let row0 = 4u * q0;
    let rows = min(8u, 4u * IN4 + 1u - row0);
    for (var rr = 0u; rr < rows; rr++) {
        let idx = pair * NPAR4 + W_OFF4 + (row0 + rr) * OUT4 + oq;
        jbar[idx] = keep * jbar[idx] + scale * accs[rr];
    }
}
