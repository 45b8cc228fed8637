// The per-sample factor of the sensitivities of the dense layer below a dense read-out
// (`jbar_factored`, maths §3): h[b, o] = g_b act'(z_{b,o}) for one chunk of samples (b counts from
// the chunk's first sample), formed once here instead of once per (j-block, input quads) task.

override OUT4: u32;
override ACT_D1: u32;   // the layer's activation code

@group(0) @binding(0) var z: texture_2d<f32>;        // (ROWS, OUT4): the layer's pre-activations
@group(0) @binding(1) var env: texture_2d<f32>;      // (ROWS) envelope g
@group(0) @binding(2) var<storage, read> chunk: Chunk;
@group(0) @binding(3) var<storage, read_write> hs: array<vec4<f32>>; // (chunk, OUT4)

@compute @workgroup_size(64)
fn factor_scale(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    if (t >= chunk.count * OUT4) {
        return;
    }
    let bs = chunk.offset + t / OUT4;
    hs[t] = ld1(env, bs) * act4_d1(ld4(z, bs * OUT4 + t % OUT4), ACT_D1);
}
