// First stage of the Σ̂ and Π̂ reductions: partial sums over chunks of CHUNK rows.
//   entry e < N²:  Σ-part  Σ_{r ∈ chunk} w_r ld1(u, r,j) ld1(u, r,k)          (rows 0..SAMPLES)
//   entry e ≥ N²:  Π-part  Σ_{q ∈ chunk} w_q X[q,j] Y[q,k]          (pairs 0..PAIRS)

override SAMPLES: u32;
override PAIRS: u32;
override NEIG: u32;
override CHUNK: u32;

@group(0) @binding(0) var u: texture_2d<f32>;              // (ROWS, NEIG)
@group(0) @binding(1) var w: texture_2d<f32>;              // (SAMPLES)
@group(0) @binding(2) var xs: texture_2d<f32>;             // (PAIRS, NEIG)
@group(0) @binding(3) var ys: texture_2d<f32>;             // (PAIRS, NEIG)
@group(0) @binding(4) var wq: texture_2d<f32>;             // (PAIRS)
@group(0) @binding(5) var<storage, read_write> partial: array<f32>;  // (CHUNKS, 2 N²)

@compute @workgroup_size(64)
fn stats_partial(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    let nn = NEIG * NEIG;
    let chunks = (max(SAMPLES, PAIRS) + CHUNK - 1u) / CHUNK;
    if (t >= chunks * 2u * nn) {
        return;
    }
    let c = t / (2u * nn);
    let e = t % (2u * nn);
    let jk = e % nn;
    let j = jk / NEIG;
    let k = jk % NEIG;
    let start = c * CHUNK;
    var acc = 0.0;
    if (e < nn) {
        let stop = min(start + CHUNK, SAMPLES);
        for (var r = start; r < stop; r++) {
            acc += ld1(w, r) * ld1(u, r * NEIG + j) * ld1(u, r * NEIG + k);
        }
    } else {
        let stop = min(start + CHUNK, PAIRS);
        for (var q = start; q < stop; q++) {
            acc += ld1(wq, q) * ld1(xs, q * NEIG + j) * ld1(ys, q * NEIG + k);
        }
    }
    partial[t] = acc;
}
