// The exchange-symmetrised network (`--exchange`): f_s(x) = (f(x) + s f(Px)) / 2 with P the swap
// of particles 0 and 1 and s = ±1 (SIGN). The network runs on twice the rows: per channel c,
// BLOCK rows of the batch then their BLOCK swapped copies (net row c·2·BLOCK + h·BLOCK + b,
// h = 1 the copy), so tangent channels of the copy are the derivatives of f∘P at x.
// MODE 0 (forward, after the last layer): out[c·BLOCK + b] = ½ (in[c·2B + b] + s in[c·2B + B + b]).
// MODE 1 (backward, its transpose): out[c·2B + h·B + b] = ½ s^h in[c·BLOCK + b].
// Rows are NEIG_PAD wide; ROWS counts the batch's rows (CHANNELS · BLOCK).

override ROWS: u32;
override BLOCK: u32;
override NEIG_PAD: u32;
override SIGN: f32;
override MODE: u32;

@group(0) @binding(0) var src: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn exchange(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_index(id, nwg);
    if (t >= ROWS * NEIG_PAD) {
        return;
    }
    let r = t / NEIG_PAD;
    let n = t % NEIG_PAD;
    let c = r / BLOCK;
    let b = r % BLOCK;
    let own = (c * 2u * BLOCK + b) * NEIG_PAD + n;
    let copy = own + BLOCK * NEIG_PAD;
    if (MODE == 0u) {
        dst[t] = 0.5 * (ld1(src, own) + SIGN * ld1(src, copy));
    } else {
        let v = 0.5 * ld1(src, t);
        dst[own] = v;
        dst[copy] = SIGN * v;
    }
}
