// The one-sided Jacobian of Σ̂ for one dense layer, fused with its moving average (maths §3).
// One template, two kernels (FACTORED = ${FACTORED}):
//
// `jbar_update` (FACTORED = 0), any dense layer:
//   Ĵ[j,k,p]  = (2/S) Σ_b w_b u_{b,j} δ_{b,k,o} a_{b,i}      p = (i, o), j ≤ k   (a = 1 for the bias)
// a GEMM over the samples b for every pair (j, k); nothing of size B×N×P is formed and no N²
// backward passes run.
//
// `jbar_factored` (FACTORED = 1), the dense layer just below a dense output layer, where the
// sensitivities factor as δ_{b,k,o} = g_b act'(z_{b,o}) W_L[o,k] (W_L: the output layer's weights,
// g: the envelope), so one GEMM per j serves every pair:
//   Q_j[i,o]  = Σ_b a_{b,i} (w_b u_{b,j}) h_{b,o},   h_{b,o} = g_b act'(z_{b,o})  (factor_scale)
//   Ĵ[j,k,p]  = (2/S) W_L[o,k] Q_j[i,o]
// N GEMMs instead of N(N+1)/2, and no sensitivities read. With CONST_FIRST the constant output
// k = 0 has none: its entries only decay.
//
// Both then update J̄[j,k,p] ← (1 − β) J̄[j,k,p] + β Ĵ[j,k,p]; `jbar_contract` folds J̄ into the
// gradient. Samples come in chunks (bounded sensitivity buffers): b counts from the chunk's first
// sample, and only the first chunk applies the decay (1 − β); later ones add.
//
// Register blocking: each invocation owns a block of four j (j0 … j0 + 3), TILE_IN_QUADS
// (${TILE_IN_QUADS}) quads of inputs (quad IN4 is the bias) and one vec4 of outputs, and (`jbar_update`)
// one eigenfunction k, the j above it computed and dropped, or (`jbar_factored`) every k ≥ j0 in
// its write-back. Per sample it loads the ${TILE_IN_QUADS} input quads, one quad of δ_k (or of z, and g_b) and
// four w·u for ${16 * TILE_IN_QUADS} vec4 multiply-adds (loads, not arithmetic, bound every kernel on lavapipe).
//# if SHARED
//
// The `_shared` kernels (SHARED = 1, lavapipe): a subgroup of 8 lanes takes one task (k, j-block,
// input quads) and 8 output quads, one per lane, and walks the samples 8 at a time: lane l
// fetches sample b0 + l's input quads and w·u once, and `subgroupBroadcast` hands them to every
// lane, so per 8 samples a lane makes ${TILE_IN_QUADS + 1} + 8 fetches instead of 8 × ${TILE_IN_QUADS + 2}.
//# end

const TILE_IN_QUADS: u32 = ${TILE_IN_QUADS}u;

override IN4: u32;
override OUT4: u32;
override NEIG: u32;
override NEIG_PAD: u32;
override W_OFF4: u32;
override NPAR4: u32;   // padded parameter count / 4: the stride of one pair in jbar
// 1: read J̄'s old values from its texture mirror (a texel fetch, where a storage load is a loop
// over the SIMD lanes on lavapipe); the engine sets it when one chunk takes the whole batch,
// so that no dispatch since the mirror's refresh wrote the entries this one reads.
override OLD_FROM_MIRROR: u32;
//# if 1 - FACTORED
override OUTPUT_LAYER: u32;  // 1: δ_{b,k,o} = g_b [o = k], so only the quad holding k is nonzero

@group(0) @binding(0) var a_in: texture_2d<f32>;     // (ROWS, IN4); the samples' rows used
@group(0) @binding(1) var sens: texture_2d<f32>;     // (chunk, NEIG, OUT4)
@group(0) @binding(2) var su: texture_2d<f32>;       // (chunk, NEIG_PAD): w_b u_{b,j} (sens_init)
@group(0) @binding(3) var<storage, read> step: Step;           // β, 2/S, 1/Q, G_Π, G_Σ
@group(0) @binding(4) var<storage, read_write> jbar: array<vec4<f32>>; // (N(N+1)/2, NPAR4)
@group(0) @binding(5) var<storage, read> chunk: Chunk;
@group(0) @binding(6) var jbar_old: texture_2d<f32>; // J̄'s mirror (OLD_FROM_MIRROR)

@compute @workgroup_size(64)
//# if 1 - SHARED
fn jbar_update(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    // Input quads 0 … IN4 (the bias), TILE_IN_QUADS per tile.
    let tiles = ((IN4 + TILE_IN_QUADS) / TILE_IN_QUADS) * OUT4;
//# end
//# if SHARED
fn jbar_update_shared(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    // t counts subgroups: tasks × input tiles × groups of 8 output quads.
    let t = flat_index(id, nwg) / WG * (WG / 8u) + sg_id;
    let tiles = ((IN4 + TILE_IN_QUADS) / TILE_IN_QUADS) * ((OUT4 + 7u) / 8u);
//# end
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
//# end
//# if FACTORED
override CONST_FIRST: u32;
override WL_OFF: u32;       // float offset of the output layer's W in params
override WL_STRIDE: u32;    // floats per row of the output layer's W (its padded output count)

@group(0) @binding(0) var a_in: texture_2d<f32>;     // (ROWS, IN4); the samples' rows used
@group(0) @binding(1) var hs: texture_2d<f32>;       // (chunk, OUT4): g_b act'(z_{b,o}) (factor_scale)
@group(0) @binding(2) var su: texture_2d<f32>;       // (chunk, NEIG_PAD): w_b u_{b,j} (sens_init)
@group(0) @binding(3) var params: texture_2d<f32>;
@group(0) @binding(4) var<storage, read> step: Step;           // β, 2/S, 1/Q, G_Π, G_Σ
@group(0) @binding(5) var<storage, read_write> jbar: array<vec4<f32>>; // (N(N+1)/2, NPAR4)
@group(0) @binding(6) var<storage, read> chunk: Chunk;
@group(0) @binding(7) var jbar_old: texture_2d<f32>; // J̄'s mirror (OLD_FROM_MIRROR)

@compute @workgroup_size(64)
//# if 1 - SHARED
fn jbar_factored(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let tiles = ((IN4 + TILE_IN_QUADS) / TILE_IN_QUADS) * OUT4;
//# end
//# if SHARED
fn jbar_factored_shared(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let t = flat_index(id, nwg) / WG * (WG / 8u) + sg_id;
    let tiles = ((IN4 + TILE_IN_QUADS) / TILE_IN_QUADS) * ((OUT4 + 7u) / 8u);
//# end
    let j0 = (t / tiles) * 4u;
    if (j0 >= NEIG) {
        return;
    }
//# end
    let tile = t % tiles;
//# if SHARED
    let o_groups = (OUT4 + 7u) / 8u;
    let oq_lane = (tile % o_groups) * 8u + lane;   // stores only where oq_lane < OUT4
    let oq = min(oq_lane, OUT4 - 1u);
    let ip = tile / o_groups;
//# end
//# if 1 - SHARED
//# if 1 - FACTORED
    // On the output layer the outputs vary slowest, so that the SIMD lanes of a group share
    // one output quad and skip the samples together (below).
    let in_tiles = tiles / OUT4;
    let oq = select(tile % OUT4, tile / in_tiles, OUTPUT_LAYER == 1u);
    let ip = select(tile / OUT4, tile % in_tiles, OUTPUT_LAYER == 1u);
//# end
//# if FACTORED
    let oq = tile % OUT4;
    let ip = tile / OUT4;
//# end
//# end
    // This invocation's input quads: q0 = TILE_IN_QUADS·ip, q0 + 1, … (quad IN4 is the bias;
    // quads beyond it are zero).
    let q0 = ip * TILE_IN_QUADS;
//# for m in 0..TILE_IN_QUADS
    let qc${m} = min(q0 + ${m}u, IN4 - 1u);
//# end
    let one = vec4<f32>(1.0, 0.0, 0.0, 0.0);
//# for jj in 0..4
//# for e in 0..4 * TILE_IN_QUADS
    var acc${jj}_${e} = vec4<f32>(0.0);
//# end
//# end
    let offset = chunk.offset;
//# if 1 - SHARED
//# if 1 - FACTORED
    // On the output layer Ĵ[j,k] vanishes outside output k: those entries only decay.
    let samples = select(chunk.count, 0u, OUTPUT_LAYER == 1u && oq != k / 4u);
//# end
//# if FACTORED
    let samples = chunk.count;
//# end
//# end
//# if SHARED
    // Every lane walks all samples (the broadcasts need the whole subgroup); a sample beyond the
    // chunk has w·u = 0.
    let samples = chunk.count;
    for (var b0 = 0u; b0 < samples; b0 += 8u) {
        let bl = min(b0 + lane, samples - 1u);
        let sf = select(vec4<f32>(0.0), ld4(su, (bl * NEIG_PAD + j0) / 4u), b0 + lane < samples);
//# for m in 0..TILE_IN_QUADS
        let af${m} = select(select(ld4(a_in, (offset + bl) * IN4 + qc${m}), one, q0 + ${m}u == IN4), vec4<f32>(0.0), q0 + ${m}u > IN4);
//# end
//# end
//# for lb in 0..1 + 7 * SHARED
//# if SHARED
        {
        let b = min(b0 + ${lb}u, samples - 1u);
        let bs = offset + b;
        let s = subgroupBroadcast(sf, ${lb}u);
//# for m in 0..TILE_IN_QUADS
        let a${m} = subgroupBroadcast(af${m}, ${lb}u);
//# end
//# end
//# if 1 - SHARED
    for (var b = 0u; b < samples; b++) {
        let bs = offset + b;
        let s = ld4(su, (b * NEIG_PAD + j0) / 4u);
//# for m in 0..TILE_IN_QUADS
        let a${m} = select(select(ld4(a_in, bs * IN4 + qc${m}), one, q0 + ${m}u == IN4), vec4<f32>(0.0), q0 + ${m}u > IN4);
//# end
//# end
//# if 1 - FACTORED
        let d = ld4(sens, (b * NEIG + k) * OUT4 + oq);
//# end
//# if FACTORED
        let d = ld4(hs, b * OUT4 + oq);
//# end
//# for jj in 0..4
        let d${jj} = s[${jj}] * d;
//# end
//# for jj in 0..4
//# for m in 0..TILE_IN_QUADS
//# for i in 0..4
        acc${jj}_${4 * m + i} += a${m}[${i}] * d${jj};
//# end
//# end
//# end
//# if SHARED
        }
//# end
//# end
    }
    let beta = step.beta;
    let scale = beta * step.two_over_s;
    let keep = select(1.0, 1.0 - beta, chunk.first == 1u);
    var accs: array<vec4<f32>, ${16 * TILE_IN_QUADS}>;
//# for jj in 0..4
//# for e in 0..4 * TILE_IN_QUADS
    accs[${jj * 4 * TILE_IN_QUADS + e}] = acc${jj}_${e};
//# end
//# end
    // Rows of the layer's block this invocation owns: 4·q0 … 4·q0 + 4·TILE_IN_QUADS − 1, up to
    // the bias row 4·IN4.
    let row0 = 4u * q0;
    let rows = min(4u * TILE_IN_QUADS, 4u * IN4 + 1u - row0);
//# if 1 - FACTORED
    let wk = vec4<f32>(1.0);
    {
//# end
//# if FACTORED
    let wl = WL_OFF + 4u * oq * WL_STRIDE;
    for (var k = j0; k < NEIG; k++) {
        // W_L[o, k] for this invocation's four outputs o = 4·oq … 4·oq + 3.
        let live = select(1.0, 0.0, CONST_FIRST == 1u && k == 0u);
        let wk = live * ld_column4(params, wl + k, WL_STRIDE);
//# end
        for (var jj = 0u; jj < 4u; jj++) {
            let j = j0 + jj;
            if (j > k) {
                break;
            }
            let pair = k * (k + 1u) / 2u + j;
//# if SHARED
            if (oq_lane >= OUT4) {
                break;
            }
//# end
            for (var rr = 0u; rr < rows; rr++) {
                let idx = pair * NPAR4 + W_OFF4 + (row0 + rr) * OUT4 + oq;
                var prev: vec4<f32>;
                if (OLD_FROM_MIRROR == 1u) {
                    prev = ld4(jbar_old, idx);
                } else {
                    prev = jbar[idx];
                }
                jbar[idx] = keep * prev + scale * wk * accs[jj * 4u * TILE_IN_QUADS + rr];
            }
        }
    }
}
