//! Structural masks over θ: block-sparse layers (maths §5) and one network per eigenfunction.

use super::NetworkSpec;
use crate::error::{Result, SpinError};

/// The block-sparse connectivity of the paper's appendix C.1 (maths §5) as a 0/1 mask over θ:
/// for layer ℓ of L with m input units, n output units and K blocks, β₀ = (ℓ−1)/L,
/// β₁ = (L−ℓ+1)/L and α_k = k/(K−1)·β₀ (k = 0..K−1), block k joins input units
/// [α_k m, (α_k+β₁) m) to output units [α_k n, (α_k+β₁) n). Units are neurons of dense layers
/// and whole feature maps (channels) of conv layers and of the dense layer after a flatten
/// (paper C.2). The first layer is dense; in the output layer, learned eigenfunction j belongs to
/// block ⌊jK/N⌋ and sees only that block's inputs. Biases are kept. Combined with
/// [`NetworkSpec::structural_mask`].
pub fn block_sparse_mask(spec: &NetworkSpec, blocks: usize) -> Result<Vec<f32>> {
    if blocks < 2 {
        return Err(SpinError::Config(format!(
            "block-sparse layers need at least 2 blocks, got {blocks}"
        )));
    }
    let layers = spec.layers();
    let total = layers.len();
    let last = total - 1;
    let skip = spec.constant_first as usize;
    let mut mask = spec
        .structural_mask()
        .unwrap_or_else(|| vec![1.0f32; spec.num_params()]);
    for (idx, ly) in layers.iter().enumerate().skip(1) {
        let l = (idx + 1) as f64;
        let big_l = total as f64;
        let (b0, b1) = ((l - 1.0) / big_l, (big_l - l + 1.0) / big_l);
        let range = |alpha: f64, width: f64, size: usize| {
            let lo = (alpha * size as f64).floor() as usize;
            let hi = (((alpha + width) * size as f64).ceil() as usize).min(size);
            lo.min(size)..hi.max(lo.min(size) + 1).min(size)
        };
        let units = ly.units();
        let mut keep = vec![false; units * ly.outputs];
        for k in 0..blocks {
            let alpha = k as f64 / (blocks - 1) as f64 * b0;
            let inputs = range(alpha, b1, units);
            let outputs: Vec<usize> = if idx != last {
                range(alpha, b1, ly.outputs).collect()
            } else {
                let learned = ly.outputs - skip;
                (skip..ly.outputs)
                    .filter(|&j| (j - skip) * blocks / learned == k)
                    .collect()
            };
            for i in inputs {
                for &o in &outputs {
                    keep[i * ly.outputs + o] = true;
                }
            }
        }
        for i in 0..ly.inputs {
            for o in 0..ly.outputs {
                if !keep[ly.unit(i) * ly.outputs + o] {
                    mask[ly.w(i, o)] = 0.0;
                }
            }
        }
    }
    Ok(mask)
}

/// One network per eigenfunction, as a 0/1 mask over θ of one wide network: every hidden width
/// (dense units or conv channels) must be a multiple of the learned N, hidden layer ℓ is split
/// into N equal blocks, the first layer is dense (each network sees the whole input), later
/// hidden layers are block-diagonal (between whole feature maps for conv layers) and learned
/// output j reads only block j. Output j then depends on its own parameters θ_j alone. Biases
/// are kept. Combined with [`NetworkSpec::structural_mask`].
pub fn separate_networks_mask(spec: &NetworkSpec) -> Result<Vec<f32>> {
    let skip = spec.constant_first as usize;
    let n = spec.outputs - skip;
    let widths = spec
        .conv
        .iter()
        .map(|c| c.channels)
        .chain(spec.hidden.iter().copied());
    if let Some(w) = widths.clone().find(|&w| w % n != 0) {
        return Err(SpinError::Config(format!(
            "one network per eigenfunction needs hidden widths divisible by N = {n}, got {w}"
        )));
    }
    let layers = spec.layers();
    let last = layers.len() - 1;
    let mut mask = spec
        .structural_mask()
        .unwrap_or_else(|| vec![1.0f32; spec.num_params()]);
    for (idx, ly) in layers.iter().enumerate().skip(1) {
        let in_block = ly.units() / n;
        for i in 0..ly.inputs {
            for o in 0..ly.outputs {
                let block_o = if idx != last {
                    o / (ly.outputs / n)
                } else if o < skip {
                    continue;
                } else {
                    o - skip
                };
                if ly.unit(i) / in_block != block_o {
                    mask[ly.w(i, o)] = 0.0;
                }
            }
        }
    }
    Ok(mask)
}
