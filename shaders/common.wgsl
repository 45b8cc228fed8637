// Shared header, prepended to every kernel in this folder.
//
// Indexing: every kernel runs 64-invocation workgroups on a 1-D or 2-D grid of workgroups
// (2-D only when one dimension would exceed the adapter's limit); `flat_index` undoes that.
// Matrices are row-major; each binding's comment gives its shape as (rows, cols).

const WG: u32 = 64u;

fn flat_index(id: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return id.x + id.y * nwg.x * WG;
}

// Read-only tensors are bound as rgba32float textures holding the buffer's bytes, 1024 texels per
// row (`src/gpu/mirror.rs`): on lavapipe a texel fetch costs about a seventh of a storage-buffer
// load. `ld4` reads vec4 i of such a tensor, `ld1` float i.
fn ld4(t: texture_2d<f32>, i: u32) -> vec4<f32> {
    return textureLoad(t, vec2<u32>(i & 1023u, i >> 10u), 0);
}

fn ld1(t: texture_2d<f32>, i: u32) -> f32 {
    return ld4(t, i >> 2u)[i & 3u];
}

// The same for indices (and records that mix indices with floats) in an `rgba32uint` mirror.
fn ld4u(t: texture_2d<u32>, i: u32) -> vec4<u32> {
    return textureLoad(t, vec2<u32>(i & 1023u, i >> 10u), 0);
}

fn ld1u(t: texture_2d<u32>, i: u32) -> u32 {
    return ld4u(t, i >> 2u)[i & 3u];
}

// Floats i, i + stride, i + 2·stride, i + 3·stride: four rows of one column of a row-major matrix.
fn ld_column4(t: texture_2d<f32>, i: u32, stride: u32) -> vec4<f32> {
    return vec4<f32>(ld1(t, i), ld1(t, i + stride), ld1(t, i + 2u * stride), ld1(t, i + 3u * stride));
}

// Softplus σ(z) = log(1 + e^z) with σ' (the logistic function) and σ'' = σ'(1 − σ'),
// written so that none of them overflows for large |z|.
fn softplus(z: f32) -> f32 {
    return max(z, 0.0) + log(1.0 + exp(-abs(z)));
}

fn softplus_d1(z: f32) -> f32 {
    let e = exp(-abs(z));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
}

fn softplus_d2(z: f32) -> f32 {
    let s = softplus_d1(z);
    return s * (1.0 - s);
}

// The same on vec4s: softplus and σ'.
fn softplus4(z: vec4<f32>) -> vec4<f32> {
    return max(z, vec4<f32>(0.0)) + log(vec4<f32>(1.0) + exp(-abs(z)));
}

fn softplus4_d1(z: vec4<f32>) -> vec4<f32> {
    let e = exp(-abs(z));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= vec4<f32>(0.0));
}

// Activations by code (the `ACT` constants): 0 identity, 1 softplus, 2 ReLU; and their
// derivatives (ReLU'(0) = 0).
fn act4(z: vec4<f32>, code: u32) -> vec4<f32> {
    if (code == 1u) {
        return softplus4(z);
    }
    if (code == 2u) {
        return max(z, vec4<f32>(0.0));
    }
    return z;
}

fn act4_d1(z: vec4<f32>, code: u32) -> vec4<f32> {
    if (code == 1u) {
        return softplus4_d1(z);
    }
    if (code == 2u) {
        return select(vec4<f32>(0.0), vec4<f32>(1.0), z > vec4<f32>(0.0));
    }
    return vec4<f32>(1.0);
}

// A chunk of samples of the Σ-Jacobian stage (one small storage buffer per chunk): the first
// sample, how many, and whether this chunk applies the moving average's decay (the first one)
// or only adds.
struct Chunk {
    offset: u32,
    count: u32,
    first: u32,
    pad: u32,
}

// The per-step values the host writes before submit B (`spin::engine::StepScalars` in Rust,
// followed by G_Π and G_Σ): one typed buffer for every kernel that needs them.
struct Step {
    beta: f32,        // moving-average rate β
    two_over_s: f32,  // 2/S, the Σ-Jacobian's factor
    inv_q: f32,       // 1/Q, the Π̂ cotangent's factor
    sigma_full: f32,  // 1: G_Σ has entries below the diagonal (the joint nest's); 0: upper triangular
    g: array<f32>,    // G_Π (N, N) then G_Σ (N, N), row-major; G_Π upper triangular
}
