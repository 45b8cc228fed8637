// The Σ part of the SpIN gradient: grad[p] += Σ_{j≤k} (G_Σ)_jk J̄[j,k,p], one invocation per vec4
// of parameters, so the reduction over pairs needs no atomics. The weights come from the Step
// buffer's packed copy of G_Σ (pair order, from vec4 PACKED4 on), four pairs per fetch.

override NEIG: u32;
override NPAR4: u32;
override PACKED4: u32;

@group(0) @binding(0) var step: texture_2d<f32>;     // the Step buffer: β, 2/S, 1/Q, pad, G_Π, G_Σ, packed G_Σ
@group(0) @binding(1) var jbar: texture_2d<f32>;     // (N(N+1)/2, NPAR4)
@group(0) @binding(2) var<storage, read_write> grad: array<vec4<f32>>; // (NPAR4)

@compute @workgroup_size(64)
fn jbar_contract(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = flat_index(id, nwg);
    if (p >= NPAR4) {
        return;
    }
    let pairs = NEIG * (NEIG + 1u) / 2u;
    var g = vec4<f32>(0.0);
    for (var q = 0u; q < pairs; q += 4u) {
        let gq = ld4(step, PACKED4 + q / 4u);
        for (var i = 0u; i < 4u; i++) {
            if (q + i < pairs) {
                g += gq[i] * ld4(jbar, (q + i) * NPAR4 + p);
            }
        }
    }
    grad[p] += g;
}
