// Softplus on forward-mode tangents (exact Laplacian, maths §4). Rows are channel-major:
// row c·S + b holds channel c of sample b: c = 0 the value h, c = 1..DIM the gradient ∂_i h,
// c = DIM + 1 the Laplacian Δh. For a = σ(z):
//   a = σ(z),  ∂_i a = σ'(z) ∂_i z,  Δa = σ'(z) Δz + σ''(z) Σ_i (∂_i z)².

override SAMPLES: u32;
override DIM: u32;
override OUT4: u32;

@group(0) @binding(0) var z: texture_2d<f32>;         // ((DIM + 2) SAMPLES, OUT4)
@group(0) @binding(1) var<storage, read_write> a: array<vec4<f32>>;   // ((DIM + 2) SAMPLES, OUT4)

@compute @workgroup_size(64)
fn tangent_act(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    if (t >= SAMPLES * OUT4) {
        return;
    }
    let b = t / OUT4;
    let oq = t % OUT4;
    let stride = SAMPLES * OUT4;
    let zv = ld4(z, b * OUT4 + oq);
    let s1 = softplus4_d1(zv);
    let s2 = s1 * (1.0 - s1);
    a[b * OUT4 + oq] = softplus4(zv);
    var sq = vec4<f32>(0.0);
    for (var i = 1u; i <= DIM; i++) {
        let idx = i * stride + b * OUT4 + oq;
        let zg = ld4(z, idx);
        a[idx] = s1 * zg;
        sq += zg * zg;
    }
    let il = (DIM + 1u) * stride + b * OUT4 + oq;
    a[il] = s1 * ld4(z, il) + s2 * sq;
}
