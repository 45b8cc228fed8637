// Boundary envelope of the box [−D, D]^DIM (reference form) applied to the raw network output:
// g(x) = Π_i max((√(2D² − x_i²) − D) / D, 0),  u = g f.  With ENVELOPE = 0, g = 1.
// Also drops the padding: f has NEIG_PAD columns, u has NEIG.

override ROWS: u32;
override DIM: u32;
override DIM_PAD: u32;
override NEIG: u32;
override NEIG_PAD: u32;
override ENVELOPE: u32;
override BOX: f32;

@group(0) @binding(0) var x: texture_2d<f32>;           // (ROWS, DIM_PAD) positions
@group(0) @binding(1) var f: texture_2d<f32>;           // (ROWS, NEIG_PAD) raw outputs
@group(0) @binding(2) var<storage, read_write> env: array<f32>;   // (ROWS) g
@group(0) @binding(3) var<storage, read_write> u: array<f32>;     // (ROWS, NEIG) g f

@compute @workgroup_size(64)
fn apply_envelope(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat_index(id, nwg);
    if (r >= ROWS) {
        return;
    }
    var g = 1.0;
    if (ENVELOPE == 1u) {
        for (var i = 0u; i < DIM; i++) {
            let xi = ld1(x, r * DIM_PAD + i);
            let s = sqrt(max(2.0 * BOX * BOX - xi * xi, 0.0));
            g *= max((s - BOX) / BOX, 0.0);
        }
    }
    env[r] = g;
    for (var n = 0u; n < NEIG; n++) {
        u[r * NEIG + n] = g * ld1(f, r * NEIG_PAD + n);
    }
}
