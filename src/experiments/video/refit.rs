//! Generalised linear SFA after training: Rayleigh–Ritz of the slowness operator on the span of
//! the network's last hidden layer and the training inputs' whitened principal coordinates
//! (linear SFA's own basis), with moments in f64 over every training input. Because linear
//! SFA's features lie in that span, the refit's Δ-values on its fitting inputs cannot exceed
//! linear SFA's; it is kept only when it is also slower on a validation split that neither the
//! fit nor the held-out numbers use.

use std::ops::Range;

use nalgebra::DMatrix;
use serde::Serialize;

use super::super::sfa::{LinearFeatures, SlowMoments};
use super::evaluate::sequence_inputs;
use super::sampler::project;
use super::{VideoConfig, VideoModel};
use crate::data::video::{input_at, Video};
use crate::error::{Result, SpinError};

/// Directions of a basis's (correlation-scaled) covariance below this fraction of its largest
/// are dropped (dead ReLU units, duplicated coordinates).
pub const REFIT_REL_TOL: f64 = 1e-8;

/// Inputs evaluated at a time when streaming over the training video.
const PIECE: usize = 1024;

/// The training inputs in order with their whitened principal coordinates (linear SFA's basis),
/// computed once for the yardstick and the refit.
pub struct TrainingCoordinates {
    /// First frames of the training inputs.
    pub starts: Vec<usize>,
    /// Runs of consecutive inputs (indices into `starts`).
    pub segments: Vec<Range<usize>>,
    /// The whitening (fitted on a subsample of the training inputs).
    pub whitening: LinearFeatures,
    /// Whitened coordinates of every training input (inputs × m), f32.
    pub z: Vec<f32>,
}

impl TrainingCoordinates {
    /// Projects every training input of `train` onto `whitening` (on all cores).
    pub fn new(video: &Video, train: &[Range<usize>], k: usize, whitening: LinearFeatures) -> Self {
        let (starts, segments) = sequence_inputs(train, k);
        let z = project(video, &starts, k, &whitening)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        Self {
            starts,
            segments,
            whitening,
            z,
        }
    }

    /// Coordinates per input.
    pub fn dim(&self) -> usize {
        self.whitening.output_dim()
    }

    /// Rows `range` of the coordinates as f64.
    pub fn rows(&self, range: Range<usize>) -> Vec<f64> {
        let m = self.dim();
        self.z[range.start * m..range.end * m]
            .iter()
            .map(|&v| v as f64)
            .collect()
    }

    /// Linear SFA fitted on every training input: the `n` slowest directions of the whitened
    /// coordinates' (Π, Σ), as a map of raw inputs, and its Δ-values on the training inputs.
    pub fn linear_sfa(&self, n: usize) -> Result<(Vec<f64>, LinearFeatures)> {
        let m = self.dim();
        let mut moments = SlowMoments::new(m);
        for seg in &self.segments {
            moments.add(&self.rows(seg.clone()), None);
        }
        let (values, c) = moments.slowest(n, REFIT_REL_TOL)?;
        let c = faer::Mat::from_fn(m, n, |i, j| c[(i, j)]);
        Ok((
            values,
            LinearFeatures {
                mean: self.whitening.mean.clone(),
                w: &self.whitening.w * &c,
            },
        ))
    }
}

/// A read-out over [last hidden layer, whitened coordinates, 1] that replaced the network's.
#[derive(Clone, Debug)]
pub struct VideoReadout {
    /// Hidden units H.
    pub hidden: usize,
    /// Whitened coordinates m.
    pub pcs: usize,
    /// (H + m + 1) × N coefficients, bias last.
    pub coef: DMatrix<f64>,
    /// The coordinates' map of raw inputs.
    pub whitening: LinearFeatures,
}

impl VideoReadout {
    /// Features (rows × N) from the hidden units (rows × H) and raw inputs (rows × D).
    pub fn apply(&self, hidden: &[f64], inputs: &[f64]) -> Vec<f64> {
        let basis = basis_rows(hidden, self.hidden, &self.whitening.apply(inputs), self.pcs);
        let rows = basis.len() / (self.hidden + self.pcs);
        let b = DMatrix::from_row_slice(rows, self.hidden + self.pcs, &basis);
        let n = self.coef.ncols();
        let f = b * self.coef.rows(0, self.hidden + self.pcs)
            + DMatrix::from_fn(rows, n, |_, j| self.coef[(self.hidden + self.pcs, j)]);
        (0..rows)
            .flat_map(|r| (0..n).map(move |j| (r, j)))
            .map(|(r, j)| f[(r, j)])
            .collect()
    }

    /// The coefficients row-major, for the checkpoint.
    pub fn to_state(&self) -> (Vec<f64>, [usize; 3]) {
        let (rows, n) = self.coef.shape();
        let flat = (0..rows)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .map(|(i, j)| self.coef[(i, j)])
            .collect();
        (flat, [self.hidden, self.pcs, n])
    }

    /// From a checkpoint's coefficients and the coordinates' map.
    pub fn from_state(flat: &[f64], shape: [usize; 3], whitening: LinearFeatures) -> Result<Self> {
        let [h, m, n] = shape;
        if flat.len() != (h + m + 1) * n || whitening.output_dim() != m {
            return Err(SpinError::Shape(format!(
                "a read-out of {} values for {h} hidden units, {m} coordinates (the whitening \
                 has {}) and {n} outputs",
                flat.len(),
                whitening.output_dim()
            )));
        }
        Ok(Self {
            hidden: h,
            pcs: m,
            coef: DMatrix::from_row_slice(h + m + 1, n, flat),
            whitening,
        })
    }
}

/// Rows of [hidden, coordinates].
fn basis_rows(hidden: &[f64], h: usize, coords: &[f64], m: usize) -> Vec<f64> {
    let rows = coords.len() / m.max(1);
    let mut out = Vec::with_capacity(rows * (h + m));
    for r in 0..rows {
        out.extend_from_slice(&hidden[r * h..(r + 1) * h]);
        out.extend_from_slice(&coords[r * m..(r + 1) * m]);
    }
    out
}

/// What the refit did (`metrics.json`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RefitReport {
    /// Why the refit could not be made (the trained network was kept), if it could not.
    pub error: Option<String>,
    /// Basis: hidden units and whitened coordinates.
    pub hidden_units: usize,
    /// See `hidden_units`.
    pub coordinates: usize,
    /// Training inputs the moments were summed over, and the validation inputs.
    pub fit_inputs: usize,
    /// See `fit_inputs`.
    pub validation_inputs: usize,
    /// The refit's Δ-values on its fitting inputs (ascending).
    pub fit_values: Vec<f64>,
    /// Sums of the Δ-values on the validation inputs: refit and trained network.
    pub validation_refit: f64,
    /// See `validation_refit`.
    pub validation_trained: f64,
    /// Whether the refitted read-out was kept (slower on the validation inputs).
    pub kept: bool,
    /// Wall time.
    pub seconds: f64,
}

/// Fit and validation parts of each run of consecutive inputs: the last `fraction` of a run
/// (at least 2 inputs, runs of fewer than 20 inputs are all fit) is validation.
pub fn fit_validation(
    segments: &[Range<usize>],
    fraction: f64,
) -> (Vec<Range<usize>>, Vec<Range<usize>>) {
    let mut fit = Vec::new();
    let mut val = Vec::new();
    for s in segments {
        let len = s.end - s.start;
        let v = if len >= 20 {
            ((fraction * len as f64).round() as usize).max(2)
        } else {
            0
        };
        fit.push(s.start..s.end - v);
        if v > 0 {
            val.push(s.end - v..s.end);
        }
    }
    (fit, val)
}

/// Fits the read-out on the training inputs of `video` (their coordinates in `coords`) and
/// judges it on the validation split; returns it and the report, which says whether to keep it.
pub fn fit_readout(
    model: &VideoModel,
    cfg: &VideoConfig,
    video: &Video,
    coords: &TrainingCoordinates,
) -> Result<(VideoReadout, RefitReport)> {
    let start = std::time::Instant::now();
    let (basis_spec, basis_params) = model.trainer.hidden_layer_network(false)?;
    let h = basis_spec.outputs;
    let m = coords.dim();
    let n = cfg.neig;
    let k = cfg.frames_per_input;
    let (fit, val) = fit_validation(&coords.segments, cfg.heldout_fraction);
    // The basis [h, z] of consecutive inputs, a piece at a time.
    let basis = |range: Range<usize>| -> Result<(Vec<f64>, Vec<f64>)> {
        let mut x = Vec::with_capacity(range.len() * video.pixels() * k);
        for &t in &coords.starts[range.clone()] {
            input_at(video, t, k, &mut x);
        }
        let hidden =
            model
                .trainer
                .outputs_of(&basis_spec, &basis_params, &model.network_inputs(&x))?;
        Ok((basis_rows(&hidden, h, &coords.rows(range), m), x))
    };
    let mut moments = SlowMoments::new(h + m);
    let mut fit_inputs = 0;
    for seg in &fit {
        let mut before: Option<Vec<f64>> = None;
        let mut at = seg.start;
        while at < seg.end {
            let end = (at + PIECE).min(seg.end);
            let (b, _) = basis(at..end)?;
            moments.add(&b, before.as_deref());
            before = Some(b[(end - at - 1) * (h + m)..].to_vec());
            fit_inputs += end - at;
            at = end;
        }
    }
    let (fit_values, c) = moments.slowest(n, REFIT_REL_TOL)?;
    let mean = moments.mean();
    let mut coef = DMatrix::zeros(h + m + 1, n);
    for j in 0..n {
        let mut bias = 0.0;
        for i in 0..h + m {
            coef[(i, j)] = c[(i, j)];
            bias -= c[(i, j)] * mean[i];
        }
        coef[(h + m, j)] = bias;
    }
    let readout = VideoReadout {
        hidden: h,
        pcs: m,
        coef,
        whitening: coords.whitening.clone(),
    };
    // Validation: the refit's and the trained network's Δ-values on inputs the fit never saw.
    let skip = cfg.constant_first as usize;
    let n_out = model.trainer.problem().spec.outputs;
    let mut refit_f = Vec::new();
    let mut trained_f = Vec::new();
    let mut segments = Vec::new();
    for seg in &val {
        let (b, x) = basis(seg.clone())?;
        let first = refit_f.len() / n;
        let f = DMatrix::from_row_slice(seg.len(), h + m, &b) * readout.coef.rows(0, h + m);
        for r in 0..seg.len() {
            refit_f.extend((0..n).map(|j| f[(r, j)] + readout.coef[(h + m, j)]));
        }
        for row in model.trainer_outputs(&x)?.chunks(n_out) {
            trained_f.extend_from_slice(&row[skip..]);
        }
        segments.push(first..first + seg.len());
    }
    let sum = |f: &[f64]| -> Result<f64> {
        Ok(super::super::sfa::delta_values(f, n, &segments)?
            .iter()
            .sum())
    };
    let (validation_refit, validation_trained) = if segments.is_empty() {
        (f64::NAN, f64::NAN)
    } else {
        (sum(&refit_f)?, sum(&trained_f)?)
    };
    let kept = validation_refit < validation_trained;
    let report = RefitReport {
        error: None,
        hidden_units: h,
        coordinates: m,
        fit_inputs,
        validation_inputs: segments.iter().map(|s| s.len()).sum(),
        fit_values,
        validation_refit,
        validation_trained,
        kept,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((readout, report))
}
