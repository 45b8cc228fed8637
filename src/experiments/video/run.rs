//! A video run: the data and its held-out split, the model (with its optional whitening), the
//! shared training loop, the evaluation, figures and `metrics.json`.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::evaluate::fit_set;
use super::evaluate::yardsticks;
use super::refit::{fit_readout, RefitReport, VideoReadout};
use super::{evaluate, figures, ClipSampler, VideoConfig};
use crate::data::video::{split_episodes, ClipSource, Video};
use crate::error::{Result, SpinError};
use crate::experiments::sfa::{pca_whitening, LinearFeatures};
use crate::experiments::training::{self, Heldout, RunSpec};
use crate::gpu::GpuContext;
use crate::operators::Operator;
use crate::spin::checkpoint::{self, TrainerState};
use crate::spin::{Problem, Trainer};

/// A trained video network: the trainer and, when it reads whitened inputs, the whitening.
pub struct VideoModel {
    /// The SpIN trainer (network, statistics, optimiser).
    pub trainer: Trainer,
    /// The fixed first layer (`--whiten`), if any.
    pub whitening: Option<LinearFeatures>,
    /// The read-out refit, when it replaced the network's own read-out.
    pub readout: Option<VideoReadout>,
}

impl VideoModel {
    /// What the network reads for raw inputs (rows × pixels·k): the inputs, or their whitened
    /// principal coordinates with `--whiten`.
    pub fn network_inputs<'a>(&self, inputs: &'a [f64]) -> std::borrow::Cow<'a, [f64]> {
        match &self.whitening {
            Some(w) => std::borrow::Cow::Owned(w.apply(inputs)),
            None => std::borrow::Cow::Borrowed(inputs),
        }
    }

    /// Restores a checkpoint: θ and, when it holds a refitted read-out, that read-out (its
    /// coordinates' whitening refitted deterministically on the training inputs of `split`).
    pub fn restore(
        &mut self,
        state: &TrainerState,
        cfg: &VideoConfig,
        split: &Split,
    ) -> Result<()> {
        self.trainer.restore(state)?;
        self.readout = None;
        if state.readout.is_empty() {
            return Ok(());
        }
        let (x, _, d) = fit_set(cfg, (&split.0, &split.1));
        let w = super::super::sfa::pca_whitening(&x, d, cfg.sfa_pca.min(d))?;
        self.readout = Some(VideoReadout::from_state(
            &state.readout,
            state.readout_shape,
            w,
        )?);
        Ok(())
    }

    /// The trained network's outputs (rows × outputs), whatever the read-out.
    pub fn trainer_outputs(&self, inputs: &[f64]) -> Result<Vec<f64>> {
        self.trainer.outputs(&self.network_inputs(inputs))
    }

    /// The model's outputs (rows × outputs, the constant first when the network has one) for
    /// raw inputs (rows × pixels·k): the refitted read-out's when there is one.
    pub fn outputs(&self, inputs: &[f64]) -> Result<Vec<f64>> {
        let Some(readout) = &self.readout else {
            return self.trainer_outputs(inputs);
        };
        let (spec, params) = self.trainer.hidden_layer_network(false)?;
        let hidden = self
            .trainer
            .outputs_of(&spec, &params, &self.network_inputs(inputs))?;
        let f = readout.apply(&hidden, inputs);
        let n = readout.coef.ncols();
        if !self.trainer.problem().spec.constant_first {
            return Ok(f);
        }
        Ok(f.chunks(n)
            .flat_map(|row| std::iter::once(1.0).chain(row.iter().copied()))
            .collect())
    }
}

/// The training and held-out (video, ranges) of a configuration.
pub type Split = (Arc<Video>, Vec<Range<usize>>, Arc<Video>, Vec<Range<usize>>);

/// Loads the data and splits it.
pub fn load_split(cfg: &VideoConfig) -> Result<Split> {
    let video = Arc::new(Video::load(&cfg.data)?);
    match &cfg.test {
        Some(t) => {
            let test = Arc::new(Video::load(t)?);
            if (test.height, test.width) != (video.height, video.width) {
                return Err(SpinError::Config(format!(
                    "the test video's frames are {}×{}, the training video's {}×{}",
                    test.width, test.height, video.width, video.height
                )));
            }
            let (tr, te) = (video.episodes(), test.episodes());
            Ok((video, tr, test, te))
        }
        None => {
            let (tr, te) = split_episodes(&video, cfg.heldout_fraction);
            Ok((video.clone(), tr, video, te))
        }
    }
}

/// A model for `cfg` on its training split: with `--whiten`, the whitening is fitted on the
/// training inputs first (deterministically, so a resumed run or `spin eval` refits the same).
pub fn model(ctx: Arc<GpuContext>, cfg: &VideoConfig, split: &Split) -> Result<VideoModel> {
    cfg.validate()?;
    let (video, train, _, _) = split;
    let source = ClipSource::new(train.clone(), cfg.frames_per_input, cfg.clip_len)?;
    let (sampler, whitening) = if cfg.whiten > 0 {
        let (x, _, d) = fit_set(cfg, (video, train));
        let w = pca_whitening(&x, d, cfg.whiten.min(d))?;
        if w.output_dim() < cfg.neig {
            return Err(SpinError::Config(format!(
                "--whiten: the training inputs span only {} dimensions, fewer than the {} \
                 eigenfunctions asked for",
                w.output_dim(),
                cfg.neig
            )));
        }
        (ClipSampler::whitened(video.clone(), source, &w), Some(w))
    } else {
        (ClipSampler::new(video.clone(), source), None)
    };
    let spec = cfg.spec(
        video.height,
        video.width,
        whitening.as_ref().map(|w| w.output_dim()),
    );
    let problem = Problem {
        sampler: Box::new(sampler),
        spec,
        operator: Operator::slowness(cfg.clip_len)?,
    };
    let mut t = Trainer::new(ctx, problem, cfg.train.clone())?;
    if cfg.blocks > 0 {
        let mask = crate::nn::block_sparse_mask(&t.problem().spec, cfg.blocks)?;
        t.set_mask(mask)?;
    }
    Ok(VideoModel {
        trainer: t,
        whitening,
        readout: None,
    })
}

/// Held-out inputs on the held-out curve, at most.
pub const HELDOUT_INPUTS: usize = 1000;

/// The held-out curve: the trained network's Δ-values on the first (at most)
/// [`HELDOUT_INPUTS`] held-out inputs, in their runs of consecutive inputs.
fn heldout<'a>(
    cfg: &'a VideoConfig,
    test: (&'a Video, &'a [Range<usize>]),
    whitening: Option<&'a LinearFeatures>,
) -> Option<Heldout<'a>> {
    if cfg.heldout_every == 0 {
        return None;
    }
    let k = cfg.frames_per_input;
    let (mut starts, mut segments) = super::sampler::sequence_inputs(test.1, k);
    starts.truncate(HELDOUT_INPUTS);
    segments.retain_mut(|s| {
        s.end = s.end.min(starts.len());
        s.end > s.start + 1
    });
    if segments.is_empty() {
        return None;
    }
    let skip = cfg.constant_first as usize;
    Some(Heldout {
        every: cfg.heldout_every,
        eval: Box::new(move |t: &mut Trainer| {
            let u = super::evaluate::features_of(test.0, &starts, k, |x| match whitening {
                Some(w) => t.outputs(&w.apply(x)),
                None => t.outputs(x),
            })?;
            let n_out = t.problem().spec.outputs;
            let f: Vec<f64> = u.chunks(n_out).flat_map(|r| r[skip..].to_vec()).collect();
            super::super::sfa::delta_values(&f, n_out - skip, &segments)
        }),
    })
}

/// The read-out refit after training ([`fit_readout`]); a refit that fails keeps the trained
/// network and says why. A kept refit goes into the checkpoint beside the trained θ (which
/// `--resume` continues from), for `spin eval`.
fn refit_readout(
    model: &mut VideoModel,
    cfg: &VideoConfig,
    video: &Video,
    coords: &super::TrainingCoordinates,
    spec: &RunSpec,
) -> Result<RefitReport> {
    let report = match fit_readout(model, cfg, video, coords) {
        Ok(refit) => {
            model.readout = refit.chosen().cloned();
            refit.report
        }
        Err(e) => {
            eprintln!("read-out refit failed, the trained network is kept: {e}");
            return Ok(RefitReport {
                error: Some(e.to_string()),
                ..Default::default()
            });
        }
    };
    let tried: Vec<String> = report
        .candidates
        .iter()
        .map(|c| format!("{}+{}: {:.5}", c.hidden_units, c.coordinates, c.validation))
        .collect();
    let best = report
        .candidates
        .iter()
        .map(|c| c.validation)
        .fold(f64::INFINITY, f64::min);
    eprintln!(
        "read-out refit ({:.1} s; validation Δ-sums of hidden units + whitened coordinates {}; trained network {:.5}{}): {}",
        report.seconds,
        tried.join(", "),
        report.validation_trained,
        report
            .validation_difference_se
            .map_or(String::new(), |se| format!(
                "; standard error of the difference {se:.5}"
            )),
        match report.chosen {
            Some(i) => format!(
                "kept {} + {}",
                report.candidates[i].hidden_units, report.candidates[i].coordinates
            ),
            None if best < report.validation_trained => format!(
                "not kept: slower than the trained read-out by less than {} standard error(s)",
                super::VALIDATION_MARGIN_SE
            ),
            None => "not kept: the trained read-out is slower".into(),
        }
    );
    if let Some(r) = &model.readout {
        let (mut state, run) = checkpoint::load(&spec.out)?;
        (state.readout, state.readout_shape) = r.to_state();
        checkpoint::save(&spec.out, &state, &run)?;
    }
    Ok(report)
}

/// Trains (or resumes) and evaluates; writes metrics.json, eigenvalues.csv, curves.png,
/// heatmaps.png (when positions are known), extremes.png, eigenpurposes.png and the checkpoint
/// into `out`.
pub fn run(
    ctx: Arc<GpuContext>,
    cfg: &VideoConfig,
    out: &Path,
    resume: Option<TrainerState>,
) -> Result<serde_json::Value> {
    let split = load_split(cfg)?;
    let mut model = model(ctx.clone(), cfg, &split)?;
    if let Some(state) = &resume {
        model.trainer.restore(state)?;
    }
    let n = model.trainer.problem().spec.outputs;
    let spec = RunSpec {
        out: out.to_path_buf(),
        run_json: serde_json::json!({ "kind": "video", "config": cfg }),
        steps: cfg.train.steps,
        time_limit: cfg.time_limit,
        checkpoint_every: cfg.checkpoint_every,
        earlier_seconds: resume.as_ref().map_or(0.0, |s| s.train_seconds),
        csv_header: training::eigen_csv_header(n),
    };
    let (video, train, test_video, test) = &split;
    let heldout = heldout(cfg, (test_video, test), model.whitening.as_ref());
    let outcome = training::train(
        &mut model.trainer,
        &spec,
        training::eigen_hooks(heldout, cfg.constant_first as usize),
    )?;
    let yard = yardsticks(cfg, video, train)?;
    // A run stopped by a failed step is at its last good state: refit that one too.
    let refit = match (cfg.readout_refit, &yard.coords) {
        (true, Some(coords)) => Some(refit_readout(&mut model, cfg, video, coords, &spec)?),
        _ => None,
    };
    let eval = evaluate(&model, cfg, &yard, (test_video, test))?;
    let (steps, learned) =
        training::eigen_ema_curves(&out.join("eigenvalues.csv"), n, cfg.constant_first as usize);
    let (hsteps, held) = training::read_rows(&out.join("heldout.csv"));
    super::super::plot::eigenvalue_curves(
        &out.join("curves.png"),
        &super::super::plot::Curves {
            title: &format!(
                "{}: slowness eigenvalues during training (N = {})",
                cfg.data.display(),
                cfg.neig
            ),
            y_label: "Δ (slowness eigenvalue)",
            steps: &steps,
            ema: &learned,
            ema_label: "EMA of the minibatch diag Λ (rate 0.01), one colour per feature",
            heldout: (!hsteps.is_empty()).then_some((&hsteps[..], &held[..])),
            heldout_label: "held-out Δ-values of the trained network",
            exact: None,
        },
    )?;
    if video.positions.is_some() {
        figures::heatmaps(&model, cfg, test_video, test, &out.join("heatmaps.png"))?;
    }
    figures::extremes(test_video, cfg, &eval, &out.join("extremes.png"))?;
    figures::eigenpurposes(test_video, cfg, &eval, &out.join("eigenpurposes.png"))?;
    let metrics = serde_json::json!({
        "config": cfg,
        "heldout_inputs": eval.inputs,
        "delta_values": eval.delta_values,
        "trained_network": eval.trained_network_delta_values.as_ref().map(|d| serde_json::json!({
            "delta_values": d,
            "delta_sum": d.iter().sum::<f64>(),
        })),
        "readout_refit": refit,
        "yardsticks_fitted_on": yard.fitted_on,
        "linear_sfa_training_delta_values": yard.sfa_fit_values,
        "linear_sfa_delta_values": eval.linear_sfa_delta_values,
        "pca_delta_values": eval.pca_delta_values,
        "delta_sum": eval.delta_values.iter().sum::<f64>(),
        "linear_sfa_delta_sum": eval.linear_sfa_delta_values.iter().sum::<f64>(),
        "pca_delta_sum": eval.pca_delta_values.iter().sum::<f64>(),
        "successor_features_delta_values": eval.successor_delta_values,
        "successor_features_delta_sum": eval.successor_delta_values.iter().sum::<f64>(),
        "note": eval.note,
        "steps": model.trainer.step,
        "wall_seconds": outcome.wall,
        "steps_per_second": outcome.steps_per_second(&model.trainer),
        "guard": outcome.guard_metrics(&model.trainer),
        "clipped_updates": model.trainer.optimizer.clipped,
        "degenerate_batches": model.trainer.degenerate_batches,
        "heldout_seconds": outcome.heldout_seconds,
        "heldout_share_of_training": outcome.heldout_seconds / outcome.wall.max(1e-9),
        "stopped_by_time_limit": outcome.stopped_by_time,
        "adapter": ctx.adapter().name,
        "parallel": model.trainer.parallel_metrics(),
        "objective": model.trainer.objective_metrics(),
    });
    crate::io::write_json(&out.join("metrics.json"), &metrics)?;
    match outcome.failure {
        Some(e) => Err(e),
        None => Ok(metrics),
    }
}
