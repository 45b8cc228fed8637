//! `spin eval` on a video run: the learned features of every input of any video.

use std::sync::Arc;

use super::{load_split, model, VideoConfig};
use crate::data::npy::{NpyArray, NpyData};
use crate::data::video::{input_at, Video};
use crate::error::{Result, SpinError};
use crate::gpu::GpuContext;
use crate::spin::checkpoint::TrainerState;

/// The learned features (N per input, the constant one left out) of every input of `target`
/// in frame order, inputs that would cross an episode start left out: (first frames, features
/// row-major).
pub fn features(
    ctx: Arc<GpuContext>,
    cfg: &VideoConfig,
    state: &TrainerState,
    target: &Video,
) -> Result<(Vec<usize>, Vec<f32>)> {
    let split = load_split(cfg)?;
    if (target.height, target.width) != (split.0.height, split.0.width) {
        return Err(SpinError::Config(format!(
            "frames of {}×{}, the run was trained on {}×{}",
            target.width, target.height, split.0.width, split.0.height
        )));
    }
    let mut model = model(ctx, cfg, &split)?;
    model.restore(state, cfg, &split)?;
    let k = cfg.frames_per_input;
    let starts: Vec<usize> = target
        .episodes()
        .iter()
        .flat_map(|e| e.start..(e.end + 1).saturating_sub(k).max(e.start))
        .collect();
    let n_out = model.trainer.problem().spec.outputs;
    let skip = cfg.constant_first as usize;
    let mut out: Vec<f32> = Vec::with_capacity(starts.len() * cfg.neig);
    for chunk in starts.chunks(512) {
        let mut x = Vec::new();
        for &t in chunk {
            input_at(target, t, k, &mut x);
        }
        let u = model.outputs(&x)?;
        for row in u.chunks(n_out) {
            out.extend(row[skip..].iter().map(|&v| v as f32));
        }
    }
    Ok((starts, out))
}

/// The features as `.npy` (rows × N float32) bytes.
pub fn features_npy(features: &[f32], neig: usize) -> Result<Vec<u8>> {
    let rows = features.len() / neig.max(1);
    Ok(NpyArray::new(vec![rows, neig], NpyData::F32(features.to_vec()))?.to_bytes())
}

/// The features as CSV with a header `frame,f0,…`: the input's first frame, then its features.
pub fn features_csv(starts: &[usize], features: &[f32], neig: usize) -> String {
    let mut out = String::from("frame,");
    out.push_str(
        &(0..neig)
            .map(|j| format!("f{j}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    out.push('\n');
    for (t, row) in starts.iter().zip(features.chunks(neig)) {
        let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        out.push_str(&format!("{t},{}\n", cells.join(",")));
    }
    out
}
