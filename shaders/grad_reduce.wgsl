// The last step of a split-K parameter gradient: a layer's block in grad is the sum of the
// GROUPS partial blocks that `param_grad` / `conv2d_param_grad` wrote, one per group of rows:
// grad[W_OFF4 + i] = Σ_g partial[g · LAYER4 + i].

override LAYER4: u32;   // the layer's padded block, in vec4s
override GROUPS: u32;
override W_OFF4: u32;   // the layer's block in grad

@group(0) @binding(0) var partial: texture_2d<f32>;                    // (GROUPS, LAYER4)
@group(0) @binding(1) var<storage, read_write> grad: array<vec4<f32>>; // (P_pad / 4)

@compute @workgroup_size(64)
fn grad_reduce(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(id, nwg);
    if (i >= LAYER4) {
        return;
    }
    var acc = vec4<f32>(0.0);
    for (var g = 0u; g < GROUPS; g++) {
        acc += ld4(partial, g * LAYER4 + i);
    }
    grad[W_OFF4 + i] = acc;
}
