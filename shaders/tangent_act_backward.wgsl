// Reverse mode through `tangent_act`: from cotangents on (a, ∂_i a, Δa) to (z, ∂_i z, Δz),
// with σ' = s, σ'' = s(1 − s), σ''' = s(1 − s)(1 − 2s):
//   δz   = σ' ca + Σ_i σ'' ∂_i z c∂_i a + (σ'' Δz + σ''' Σ_i (∂_i z)²) cΔa
//   δ∂_i z = σ' c∂_i a + 2 σ'' ∂_i z cΔa
//   δΔz  = σ' cΔa

override SAMPLES: u32;
override DIM: u32;
override OUT4: u32;

@group(0) @binding(0) var z: texture_2d<f32>;           // ((DIM + 2) SAMPLES, OUT4)
@group(0) @binding(1) var cot_a: texture_2d<f32>;       // ((DIM + 2) SAMPLES, OUT4)
@group(0) @binding(2) var<storage, read_write> delta: array<vec4<f32>>; // ((DIM + 2) SAMPLES, OUT4)

@compute @workgroup_size(64)
fn tangent_act_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    if (t >= SAMPLES * OUT4) {
        return;
    }
    let b = t / OUT4;
    let oq = t % OUT4;
    let stride = SAMPLES * OUT4;
    let v = b * OUT4 + oq;
    let l = (DIM + 1u) * stride + v;
    let zv = ld4(z, v);
    let s1 = softplus4_d1(zv);
    let s2 = s1 * (1.0 - s1);
    let s3 = s2 * (1.0 - 2.0 * s1);
    let cl = ld4(cot_a, l);
    var dv = s1 * ld4(cot_a, v) + s2 * ld4(z, l) * cl;
    for (var i = 1u; i <= DIM; i++) {
        let idx = i * stride + v;
        let zg = ld4(z, idx);
        let cg = ld4(cot_a, idx);
        dv += s2 * zg * cg + s3 * zg * zg * cl;
        delta[idx] = s1 * cg + 2.0 * s2 * zg * cl;
    }
    delta[v] = dv;
    delta[l] = s1 * cl;
}
