// The one-sided Jacobian of Σ̂ for one dense layer, fused with its moving average (SPEC §3):
//   Ĵ[j,k,p]  = (2/S) Σ_b w_b u_{b,j} δ_{b,k,o} a_{b,i}      p = (i, o), j ≤ k   (a = 1 for the bias)
//   J̄[j,k,p] ← (1 − β) J̄[j,k,p] + β Ĵ[j,k,p]
// A GEMM over the samples b for every pair (j, k); nothing of size B×N×P is formed and no N²
// backward passes run. `jbar_contract` then folds J̄ into the gradient. Samples come in chunks
// (bounded sensitivity buffers): b counts from the chunk's first sample, and only the first chunk
// applies the decay (1 − β); later ones add.
//
// Register blocking: each invocation owns one eigenfunction k, a block of four j (j0 … j0 + 3, the
// ones above k computed and dropped), eight inputs (two quads; quad IN4 is the bias) and one
// vec4 of outputs: per sample it loads the two input quads, δ_k and four w·u — four loads for 32
// vec4 multiply-adds (loads, not arithmetic, bound every kernel on lavapipe).

override IN4: u32;
override OUT4: u32;
override NEIG: u32;
override NEIG_PAD: u32;
override W_OFF4: u32;
override NPAR4: u32;   // padded parameter count / 4: the stride of one pair in jbar
override OUTPUT_LAYER: u32;  // 1: δ_{b,k,o} = g_b [o = k], so only the quad holding k is nonzero

@group(0) @binding(0) var a_in: texture_2d<f32>;     // (ROWS, IN4); the samples' rows used
@group(0) @binding(1) var sens: texture_2d<f32>;     // (chunk, NEIG, OUT4)
@group(0) @binding(2) var su: texture_2d<f32>;       // (chunk, NEIG_PAD): w_b u_{b,j} (sens_init)
@group(0) @binding(3) var<storage, read> step: Step;           // β, 2/S, 1/Q, G_Π, G_Σ
@group(0) @binding(4) var<storage, read_write> jbar: array<vec4<f32>>; // (N(N+1)/2, NPAR4)
@group(0) @binding(5) var<storage, read> chunk: Chunk;

// Number of (k, j-block) tasks: Σ_k ⌈(k + 1)/4⌉.
fn jbar_blocks() -> u32 {
    var n = 0u;
    for (var k = 0u; k < NEIG; k++) {
        n += (k + 4u) / 4u;
    }
    return n;
}

@compute @workgroup_size(64)
fn jbar_update(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let tiles = ((IN4 + 2u) / 2u) * OUT4;
    var blk = t / tiles;
    var k = 0u;
    loop {
        if (k >= NEIG) {
            return;
        }
        let nb = (k + 4u) / 4u;
        if (blk < nb) {
            break;
        }
        blk -= nb;
        k += 1u;
    }
    let j0 = blk * 4u;
    let tile = t % tiles;
    let oq = tile % OUT4;
    // Two input quads per invocation: quads q0 = 2·ip and q1 = 2·ip + 1 (quad IN4 is the bias).
    let q0 = (tile / OUT4) * 2u;
    let q1 = q0 + 1u;
    let l0 = min(q0, IN4 - 1u);
    let l1 = min(q1, IN4 - 1u);
    let one = vec4<f32>(1.0, 0.0, 0.0, 0.0);
    var acc00 = vec4<f32>(0.0);
    var acc01 = vec4<f32>(0.0);
    var acc02 = vec4<f32>(0.0);
    var acc03 = vec4<f32>(0.0);
    var acc04 = vec4<f32>(0.0);
    var acc05 = vec4<f32>(0.0);
    var acc06 = vec4<f32>(0.0);
    var acc07 = vec4<f32>(0.0);
    var acc10 = vec4<f32>(0.0);
    var acc11 = vec4<f32>(0.0);
    var acc12 = vec4<f32>(0.0);
    var acc13 = vec4<f32>(0.0);
    var acc14 = vec4<f32>(0.0);
    var acc15 = vec4<f32>(0.0);
    var acc16 = vec4<f32>(0.0);
    var acc17 = vec4<f32>(0.0);
    var acc20 = vec4<f32>(0.0);
    var acc21 = vec4<f32>(0.0);
    var acc22 = vec4<f32>(0.0);
    var acc23 = vec4<f32>(0.0);
    var acc24 = vec4<f32>(0.0);
    var acc25 = vec4<f32>(0.0);
    var acc26 = vec4<f32>(0.0);
    var acc27 = vec4<f32>(0.0);
    var acc30 = vec4<f32>(0.0);
    var acc31 = vec4<f32>(0.0);
    var acc32 = vec4<f32>(0.0);
    var acc33 = vec4<f32>(0.0);
    var acc34 = vec4<f32>(0.0);
    var acc35 = vec4<f32>(0.0);
    var acc36 = vec4<f32>(0.0);
    var acc37 = vec4<f32>(0.0);
    // On the output layer Ĵ[j,k] vanishes outside output k: those entries only decay.
    let offset = chunk.offset;
    let samples = select(chunk.count, 0u, OUTPUT_LAYER == 1u && oq != k / 4u);
    for (var b = 0u; b < samples; b++) {
        let bs = offset + b;
        let s = ld4(su, (b * NEIG_PAD + j0) / 4u);
        let s0 = s.x;
        let s1 = s.y;
        let s2 = s.z;
        let s3 = s.w;
        let d = ld4(sens, (b * NEIG + k) * OUT4 + oq);
        let d0 = s0 * d;
        let d1 = s1 * d;
        let d2 = s2 * d;
        let d3 = s3 * d;
        let a = select(ld4(a_in, bs * IN4 + l0), one, q0 == IN4);
        let c = select(select(ld4(a_in, bs * IN4 + l1), one, q1 == IN4), vec4<f32>(0.0), q1 > IN4);
        acc00 += a.x * d0;
        acc01 += a.y * d0;
        acc02 += a.z * d0;
        acc03 += a.w * d0;
        acc04 += c.x * d0;
        acc05 += c.y * d0;
        acc06 += c.z * d0;
        acc07 += c.w * d0;
        acc10 += a.x * d1;
        acc11 += a.y * d1;
        acc12 += a.z * d1;
        acc13 += a.w * d1;
        acc14 += c.x * d1;
        acc15 += c.y * d1;
        acc16 += c.z * d1;
        acc17 += c.w * d1;
        acc20 += a.x * d2;
        acc21 += a.y * d2;
        acc22 += a.z * d2;
        acc23 += a.w * d2;
        acc24 += c.x * d2;
        acc25 += c.y * d2;
        acc26 += c.z * d2;
        acc27 += c.w * d2;
        acc30 += a.x * d3;
        acc31 += a.y * d3;
        acc32 += a.z * d3;
        acc33 += a.w * d3;
        acc34 += c.x * d3;
        acc35 += c.y * d3;
        acc36 += c.z * d3;
        acc37 += c.w * d3;
    }
    let beta = step.beta;
    let scale = beta * step.two_over_s;
    let keep = select(1.0, 1.0 - beta, chunk.first == 1u);
    var accs = array<vec4<f32>, 32>(acc00, acc01, acc02, acc03, acc04, acc05, acc06, acc07, acc10, acc11, acc12, acc13, acc14, acc15, acc16, acc17, acc20, acc21, acc22, acc23, acc24, acc25, acc26, acc27, acc30, acc31, acc32, acc33, acc34, acc35, acc36, acc37);
    // Rows of the layer's block this invocation owns: 4·q0 .. 4·q0 + 7, up to the bias row 4·IN4.
    let row0 = 4u * q0;
    let rows = min(8u, 4u * IN4 + 1u - row0);
    for (var jj = 0u; jj < 4u; jj++) {
        let j = j0 + jj;
        if (j > k) {
            break;
        }
        let pair = k * (k + 1u) / 2u + j;
        for (var rr = 0u; rr < rows; rr++) {
            let idx = pair * NPAR4 + W_OFF4 + (row0 + rr) * OUT4 + oq;
            jbar[idx] = keep * jbar[idx] + scale * accs[jj * 8u + rr];
        }
    }
}
