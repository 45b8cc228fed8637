// The box envelope on forward-mode tangents: u = g f, ∂_i u = ∂_i g f + g ∂_i f,
// Δu = g Δf + 2 ∇g·∇f + f Δg, with g(x) = Π_i h(x_i), h(t) = max((√(2D² − t²) − D)/D, 0),
// h'(t) = −t / (D √(2D² − t²)), h''(t) = −2D / (2D² − t²)^{3/2} where h > 0 (all 0 outside).
// Rows are channel-major (see tangent_act.wgsl); f has NEIG_PAD columns, u has NEIG.
// DIM ≤ MAX_DIM (the engine refuses more: `MAX_TANGENT_DIM` in src/spin/engine/buffers.rs).

override SAMPLES: u32;
override DIM: u32;
override DIM_PAD: u32;
override NEIG: u32;
override NEIG_PAD: u32;
override ENVELOPE: u32;
override BOX: f32;

@group(0) @binding(0) var x: texture_2d<f32>;           // ((DIM + 2) SAMPLES, DIM_PAD); channel 0 = positions
@group(0) @binding(1) var f: texture_2d<f32>;           // ((DIM + 2) SAMPLES, NEIG_PAD)
@group(0) @binding(2) var<storage, read_write> env: array<f32>;   // ((DIM + 2) SAMPLES): g, ∂_i g, Δg
@group(0) @binding(3) var<storage, read_write> u: array<f32>;     // ((DIM + 2) SAMPLES, NEIG)

const MAX_DIM: u32 = 16u;

struct Env {
    g: f32,
    grad: array<f32, MAX_DIM>,
    lap: f32,
}

fn envelope_at(b: u32) -> Env {
    var out: Env;
    out.g = 1.0;
    out.lap = 0.0;
    for (var i = 0u; i < MAX_DIM; i++) {
        out.grad[i] = 0.0;
    }
    if (ENVELOPE == 0u) {
        return out;
    }
    var h: array<f32, MAX_DIM>;
    var h1: array<f32, MAX_DIM>;
    var h2: array<f32, MAX_DIM>;
    for (var i = 0u; i < DIM; i++) {
        let t = ld1(x, b * DIM_PAD + i);
        let q = 2.0 * BOX * BOX - t * t;
        let r = sqrt(max(q, 0.0));
        let inside = r > BOX;
        h[i] = select(0.0, (r - BOX) / BOX, inside);
        h1[i] = select(0.0, -t / (BOX * r), inside);
        h2[i] = select(0.0, -2.0 * BOX / (q * r), inside);
    }
    var g = 1.0;
    for (var i = 0u; i < DIM; i++) {
        g *= h[i];
    }
    out.g = g;
    for (var i = 0u; i < DIM; i++) {
        var others = 1.0;
        for (var j = 0u; j < DIM; j++) {
            if (j != i) {
                others *= h[j];
            }
        }
        out.grad[i] = h1[i] * others;
        out.lap += h2[i] * others;
    }
    return out;
}

@compute @workgroup_size(64)
fn tangent_envelope(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_index(id, nwg);
    if (b >= SAMPLES) {
        return;
    }
    let e = envelope_at(b);
    let lrow = (DIM + 1u) * SAMPLES + b;
    env[b] = e.g;
    env[lrow] = e.lap;
    for (var i = 0u; i < DIM; i++) {
        env[(i + 1u) * SAMPLES + b] = e.grad[i];
    }
    for (var n = 0u; n < NEIG; n++) {
        let fv = ld1(f, b * NEIG_PAD + n);
        var lap = e.g * ld1(f, lrow * NEIG_PAD + n) + fv * e.lap;
        for (var i = 0u; i < DIM; i++) {
            let grow = (i + 1u) * SAMPLES + b;
            let fg = ld1(f, grow * NEIG_PAD + n);
            u[grow * NEIG + n] = e.grad[i] * fv + e.g * fg;
            lap += 2.0 * e.grad[i] * fg;
        }
        u[b * NEIG + n] = e.g * fv;
        u[lrow * NEIG + n] = lap;
    }
}
