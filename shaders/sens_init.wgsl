// Per-sample output sensitivities at the output layer: δ[b, k, o] = ∂u_k(x_b)/∂f_o = g_b [o = k],
// the start of the N sensitivity back-passes for the Σ-Jacobian, for one chunk of samples
// (b counts from the chunk's first sample). With CONST_FIRST, output 0 is the constant
// eigenfunction: its sensitivities are zero. Also writes su[b, j] = w_b u_{b,j} (zero-padded to
// NEIG_PAD), the sample weights that `jbar_update` reads four at a time.

override SAMPLES: u32;
override NEIG: u32;
override NEIG_PAD: u32;
override CONST_FIRST: u32;

@group(0) @binding(0) var env: texture_2d<f32>;          // (ROWS) envelope g; first SAMPLES rows used
@group(0) @binding(1) var<storage, read_write> sens: array<f32>;   // (SAMPLES, NEIG, NEIG_PAD), SAMPLES = the chunk size
@group(0) @binding(2) var<storage, read> chunk: Chunk;
@group(0) @binding(3) var u: texture_2d<f32>;            // (ROWS, NEIG)
@group(0) @binding(4) var w: texture_2d<f32>;            // (S) importance weights
@group(0) @binding(5) var<storage, read_write> su: array<f32>;   // (SAMPLES, NEIG_PAD)

@compute @workgroup_size(64)
fn sens_init(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    if (t >= SAMPLES * NEIG * NEIG_PAD) {
        return;
    }
    let b = t / (NEIG * NEIG_PAD);
    let k = (t / NEIG_PAD) % NEIG;
    let o = t % NEIG_PAD;
    if (k == 0u) {
        let bs = chunk.offset + b;
        su[b * NEIG_PAD + o] = select(0.0, ld1(w, bs) * ld1(u, bs * NEIG + min(o, NEIG - 1u)), o < NEIG);
    }
    sens[t] = select(0.0, ld1(env, chunk.offset + b), o == k && !(CONST_FIRST == 1u && k == 0u));
}
