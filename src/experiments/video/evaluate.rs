//! The held-out evaluation: Δ-values of the learned features beside linear SFA and PCA fitted on
//! the training inputs.

use std::ops::Range;

use serde::Serialize;

use super::super::sfa::{delta_values, pca_features, pca_whitening, LinearFeatures};
use super::sampler::sequence_inputs;
use super::{VideoConfig, VideoModel};
use crate::data::video::{input_at, Video};
use crate::error::{Result, SpinError};

/// Features of the inputs starting at `starts`, in chunks: (rows × m).
pub(super) fn features_of(
    video: &Video,
    starts: &[usize],
    k: usize,
    mut f: impl FnMut(&[f64]) -> Result<Vec<f64>>,
) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for chunk in starts.chunks(512) {
        let mut x = Vec::with_capacity(chunk.len() * video.pixels() * k);
        for &t in chunk {
            input_at(video, t, k, &mut x);
        }
        out.extend(f(&x)?);
    }
    Ok(out)
}

/// The held-out evaluation of a run.
#[derive(Clone, Debug, Serialize)]
pub struct VideoEvaluation {
    /// Held-out inputs.
    pub inputs: usize,
    /// Δ-values of the learned features (the constant one left out), ascending: the refitted
    /// read-out's when it was kept.
    pub delta_values: Vec<f64>,
    /// The trained network's own, when the refit replaced its read-out.
    pub trained_network_delta_values: Option<Vec<f64>>,
    /// The same for linear SFA fitted on every training input; empty when skipped.
    pub linear_sfa_delta_values: Vec<f64>,
    /// The same for the N leading principal components of the training inputs.
    pub pca_delta_values: Vec<f64>,
    /// The same for linear successor features' N eigenpurposes; empty when skipped.
    pub successor_delta_values: Vec<f64>,
    /// Why a yardstick was skipped, if one was.
    pub note: Option<String>,
    /// First frames of the held-out inputs.
    #[serde(skip)]
    pub starts: Vec<usize>,
    /// The learned features of the held-out inputs (inputs × N).
    #[serde(skip)]
    pub features: Vec<f64>,
    /// The PCA features of the held-out inputs (inputs × N), when fitted.
    #[serde(skip)]
    pub pca_features: Vec<f64>,
    /// The successor features' eigenpurposes on the held-out inputs (inputs × N), when fitted.
    #[serde(skip)]
    pub successor_features: Vec<f64>,
}

/// Values (inputs × dimension) the linear yardsticks are fitted on at most: 960 MB of f64, so
/// that the default 4 000 inputs fit for Atari's 84×84×4 stacks (30 M values cut them to 1 060
/// inputs, and PCA directions from so few left linear SFA short of its best).
const MAX_FIT_VALUES: usize = 120_000_000;

/// The inputs the linear yardsticks (and the whitening) are fitted on: evenly spaced pairs
/// (t, t + 1) of consecutive training inputs, as (inputs rows × D, rows that start a pair, D).
pub(super) fn fit_set(
    cfg: &VideoConfig,
    train: (&Video, &[Range<usize>]),
) -> (Vec<f64>, Vec<usize>, usize) {
    let k = cfg.frames_per_input;
    let d = train.0.pixels() * k;
    let (all, segs) = sequence_inputs(train.1, k);
    let pairs_all: Vec<usize> = segs
        .iter()
        .flat_map(|s| s.start..s.end.saturating_sub(1))
        .collect();
    let fit_pairs = (cfg.fit_inputs.min(MAX_FIT_VALUES / d) / 2).max(2);
    let stride = pairs_all.len().div_ceil(fit_pairs).max(1);
    let chosen: Vec<usize> = pairs_all.iter().step_by(stride).copied().collect();
    let mut x = Vec::with_capacity(2 * chosen.len() * d);
    for &i in &chosen {
        input_at(train.0, all[i], k, &mut x);
        input_at(train.0, all[i + 1], k, &mut x);
    }
    let pair_rows: Vec<usize> = (0..chosen.len()).map(|i| 2 * i).collect();
    (x, pair_rows, d)
}

/// The linear yardsticks, fitted on the training inputs: linear SFA on every training input
/// (PCA-whitened to `sfa_pca` dimensions with directions from an evenly spaced subsample, then
/// the moments of the whitened coordinates over every training input), and PCA on pixels (the
/// subsample's directions).
pub struct Yardsticks {
    /// Linear SFA's features, when it could be fitted.
    pub sfa: Option<LinearFeatures>,
    /// Its Δ-values on the training inputs.
    pub sfa_fit_values: Vec<f64>,
    /// Linear successor features' eigenpurposes on the same coordinates (paper C.3), when
    /// they could be fitted.
    pub successor: Option<LinearFeatures>,
    /// The N leading principal directions of the pixels.
    pub pca: LinearFeatures,
    /// The training inputs and their whitened coordinates (the refit's basis), when whitening
    /// worked.
    pub coords: Option<super::TrainingCoordinates>,
    /// What each was fitted on (`metrics.json`).
    pub fitted_on: serde_json::Value,
    /// Why linear SFA was skipped, if it was.
    pub note: Option<String>,
}

/// Fits the yardsticks on the training inputs `train` of `video`.
pub fn yardsticks(cfg: &VideoConfig, video: &Video, train: &[Range<usize>]) -> Result<Yardsticks> {
    let (x, _, d) = fit_set(cfg, (video, train));
    let subsample = x.len() / d;
    let pca = pca_features(&x, d, cfg.neig)?;
    let mut note = None;
    let mut coords = None;
    let mut sfa = None;
    let mut sfa_fit_values = Vec::new();
    let mut successor = None;
    match pca_whitening(&x, d, cfg.sfa_pca.min(d)) {
        Ok(w) => {
            let c = super::TrainingCoordinates::new(video, train, cfg.frames_per_input, w);
            match c.linear_sfa(cfg.neig) {
                Ok((values, lf)) => {
                    sfa = Some(lf);
                    sfa_fit_values = values;
                }
                Err(e) => note = Some(format!("linear SFA skipped: {e}")),
            }
            match c.successor_features(cfg.neig, super::SUCCESSOR_GAMMA) {
                Ok(lf) => successor = Some(lf),
                Err(e) => note = Some(format!("successor features skipped: {e}")),
            }
            coords = Some(c);
        }
        Err(e) => note = Some(format!("linear SFA skipped: {e}")),
    }
    let inputs = coords.as_ref().map_or(0, |c| c.starts.len());
    let dims = coords.as_ref().map_or(0, |c| c.dim());
    let fitted_on = serde_json::json!({
        "pca_directions": format!("{subsample} training inputs, evenly spaced"),
        "linear_sfa": format!(
            "{dims} whitened principal coordinates (directions from those {subsample} inputs), \
             moments over all {inputs} training inputs"
        ),
        "successor_features": format!(
            "linear, by LSTD with γ = {} on the same {dims} whitened coordinates over all \
             {inputs} training inputs; the N leading right singular vectors of the successor \
             features as eigenpurposes",
            super::SUCCESSOR_GAMMA
        ),
    });
    Ok(Yardsticks {
        sfa,
        sfa_fit_values,
        successor,
        pca,
        coords,
        fitted_on,
        note,
    })
}

/// Evaluates the model (its refitted read-out, when it has one) on `test` ranges beside the
/// trained network, linear SFA and PCA.
pub fn evaluate(
    model: &VideoModel,
    cfg: &VideoConfig,
    yardsticks: &Yardsticks,
    test: (&Video, &[Range<usize>]),
) -> Result<VideoEvaluation> {
    let k = cfg.frames_per_input;
    let n_out = model.trainer.problem().spec.outputs;
    let skip = cfg.constant_first as usize;
    let (starts, segments) = sequence_inputs(test.1, k);
    if starts.len() < 2 {
        return Err(SpinError::Config(
            "the held-out part holds fewer than 2 inputs".into(),
        ));
    }
    let learned_of = |f: &dyn Fn(&[f64]) -> Result<Vec<f64>>| -> Result<Vec<f64>> {
        let u = features_of(test.0, &starts, k, f)?;
        Ok(u.chunks(n_out)
            .flat_map(|row| row[skip..].to_vec())
            .collect())
    };
    let learned = learned_of(&|x| model.outputs(x))?;
    let delta = delta_values(&learned, cfg.neig, &segments)?;
    let trained = match model.readout {
        Some(_) => Some(delta_values(
            &learned_of(&|x| model.trainer_outputs(x))?,
            cfg.neig,
            &segments,
        )?),
        None => None,
    };
    let held = |lf: &LinearFeatures| features_of(test.0, &starts, k, |x| Ok(lf.apply(x)));
    let sfa = match &yardsticks.sfa {
        Some(lf) => delta_values(&held(lf)?, cfg.neig, &segments)?,
        None => Vec::new(),
    };
    let pca_f = held(&yardsticks.pca)?;
    let pca = delta_values(&pca_f, cfg.neig, &segments)?;
    let (successor, successor_f) = match &yardsticks.successor {
        Some(lf) => {
            let f = held(lf)?;
            (delta_values(&f, cfg.neig, &segments)?, f)
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(VideoEvaluation {
        inputs: starts.len(),
        delta_values: delta,
        trained_network_delta_values: trained,
        linear_sfa_delta_values: sfa,
        pca_delta_values: pca,
        successor_delta_values: successor,
        note: yardsticks.note.clone(),
        starts,
        features: learned,
        pca_features: pca_f,
        successor_features: successor_f,
    })
}
