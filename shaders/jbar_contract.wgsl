// The Σ part of the SpIN gradient: grad[p] += Σ_{j≤k} (G_Σ)_jk J̄[j,k,p], one invocation per vec4
// of parameters, so the reduction over pairs needs no atomics.

override NEIG: u32;
override NPAR4: u32;

@group(0) @binding(0) var step: texture_2d<f32>;     // the Step buffer: β, 2/S, 1/Q, pad, G_Π, G_Σ
@group(0) @binding(1) var jbar: texture_2d<f32>;     // (N(N+1)/2, NPAR4)
@group(0) @binding(2) var<storage, read_write> grad: array<vec4<f32>>; // (NPAR4)

@compute @workgroup_size(64)
fn jbar_contract(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = flat_index(id, nwg);
    if (p >= NPAR4) {
        return;
    }
    let nn = NEIG * NEIG;
    var g = vec4<f32>(0.0);
    var pair = 0u;
    for (var k = 0u; k < NEIG; k++) {
        for (var j = 0u; j <= k; j++) {
            g += ld1(step, 4u + nn + j * NEIG + k) * ld4(jbar, pair * NPAR4 + p);
            pair += 1u;
        }
    }
    grad[p] += g;
}
