// Reverse mode through `tangent_envelope`: cotangents on (u, ∂_i u, Δu) to (f, ∂_i f, Δf),
//   δf   = g cu + Σ_i ∂_i g c∂_i u + Δg cΔu
//   δ∂_i f = g c∂_i u + 2 ∂_i g cΔu
//   δΔf  = g cΔu
// using the (g, ∂_i g, Δg) that the forward kernel stored in `env`.

override SAMPLES: u32;
override DIM: u32;
override NEIG: u32;
override NEIG_PAD: u32;

@group(0) @binding(0) var env: texture_2d<f32>;          // ((DIM + 2) SAMPLES)
@group(0) @binding(1) var cot_u: texture_2d<f32>;        // ((DIM + 2) SAMPLES, NEIG_PAD)
@group(0) @binding(2) var<storage, read_write> delta: array<f32>;  // ((DIM + 2) SAMPLES, NEIG_PAD)

@compute @workgroup_size(64)
fn tangent_envelope_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    if (t >= SAMPLES * NEIG_PAD) {
        return;
    }
    let b = t / NEIG_PAD;
    let n = t % NEIG_PAD;
    let lrow = (DIM + 1u) * SAMPLES + b;
    let g = ld1(env, b);
    let cl = ld1(cot_u, lrow * NEIG_PAD + n);
    var dv = g * ld1(cot_u, b * NEIG_PAD + n) + ld1(env, lrow) * cl;
    for (var i = 0u; i < DIM; i++) {
        let grow = (i + 1u) * SAMPLES + b;
        let gi = ld1(env, grow);
        let cg = ld1(cot_u, grow * NEIG_PAD + n);
        dv += gi * cg;
        delta[grow * NEIG_PAD + n] = g * cg + 2.0 * gi * cl;
    }
    delta[b * NEIG_PAD + n] = dv;
    delta[lrow * NEIG_PAD + n] = g * cl;
}
