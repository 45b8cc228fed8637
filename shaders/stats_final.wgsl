// Second stage of the Σ̂ and Π̂ reductions: sum the chunk partials and normalise,
// Σ̂ = (1/S) Σ_chunks, Π̂ = (1/Q) Σ_chunks. Output: Σ̂ (N,N) then Π̂ (N,N).

override SAMPLES: u32;
override PAIRS: u32;
override NEIG: u32;
override CHUNKS: u32;

@group(0) @binding(0) var<storage, read> partial: array<f32>;        // (CHUNKS, 2 N²)
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;    // (2 N²)

@compute @workgroup_size(64)
fn stats_final(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(id, nwg);
    let nn = NEIG * NEIG;
    if (e >= 2u * nn) {
        return;
    }
    var acc = 0.0;
    for (var c = 0u; c < CHUNKS; c++) {
        acc += partial[c * 2u * nn + e];
    }
    stats[e] = acc / f32(select(PAIRS, SAMPLES, e < nn));
}
