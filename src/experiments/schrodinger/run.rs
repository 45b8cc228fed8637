//! A Schrödinger run: the trainer for a configuration, the shared training loop, then the
//! evaluation (with the read-out refit), `metrics.json` and the figures.

use std::path::Path;
use std::sync::Arc;

use super::{
    below_exact, evaluate_to_target, figures, max_relative_std_error, readout_refit,
    relative_errors, ReadoutRefit, SamplerKind, SchrodingerConfig, EXPRESSION_REFERENCE_TOLERANCE,
    GRID_REFERENCE_N,
};
use crate::error::Result;
use crate::experiments::training::{self, Heldout, Hooks, Outcome, RunSpec};
use crate::gpu::GpuContext;
use crate::spin::checkpoint::{self, TrainerState};
use crate::spin::{Evaluation, Trainer};

/// Refits an adaptive proposal to the trainer's current eigenfunctions (Σ_k v_k² at the grid's
/// cell centres, with L from Σ̄); does nothing for the other samplers.
pub fn refit_proposal(trainer: &mut Trainer, cfg: &SchrodingerConfig) -> Result<()> {
    if cfg.sampler != SamplerKind::Adaptive {
        return Ok(());
    }
    if cfg.particles > 1 {
        return refit_particle_proposal(trainer, cfg);
    }
    let mut q = cfg.adaptive_proposal()?;
    let centres = q.cell_centres();
    let n = cfg.neig;
    let sigma: Vec<f64> = trainer.sigma_avg.iter().copied().collect();
    let v = trainer.eigenfunctions(&centres, &sigma)?;
    let density: Vec<f64> = v.chunks(n).map(|c| c.iter().map(|x| x * x).sum()).collect();
    q.fit(&density)?;
    trainer.set_sampler(Box::new(q))
}

/// Draws for each refit of the per-particle adaptive proposal.
pub const PARTICLE_FIT_SAMPLES: usize = 1 << 16;

/// The per-particle adaptive proposal refitted to the learned states' one-particle density:
/// [`PARTICLE_FIT_SAMPLES`] configurations from the current proposal, each with mass
/// w Σ_k v_k² (v = L⁻¹u, L from Σ̄), binned by every particle's position. The draws come from
/// their own stream, seeded by the run's seed and the step, so a resumed run refits alike.
fn refit_particle_proposal(trainer: &mut Trainer, cfg: &SchrodingerConfig) -> Result<()> {
    use rand::SeedableRng;
    let mut q = cfg.particle_proposal(true)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        cfg.train.seed ^ trainer.step.wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    let (points, w) = trainer
        .problem()
        .sampler
        .sample(&mut rng, PARTICLE_FIT_SAMPLES);
    let n = cfg.neig;
    let sigma: Vec<f64> = trainer.sigma_avg.iter().copied().collect();
    let v = trainer.eigenfunctions(&points, &sigma)?;
    let mass: Vec<f64> = v
        .chunks(n)
        .zip(&w)
        .map(|(c, w)| w * c.iter().map(|x| x * x).sum::<f64>())
        .collect();
    q.fit_marginal(&points, &mass)?;
    trainer.set_sampler(Box::new(q))
}

/// A fresh trainer for `cfg`: the reference initialisation with the first layer scaled to the
/// input length scale, and the block-sparse or one-network-per-eigenfunction masks.
fn new_trainer(ctx: &Arc<GpuContext>, cfg: &SchrodingerConfig) -> Result<Trainer> {
    let problem = cfg.problem(ctx)?;
    let mut trainer = Trainer::new(ctx.clone(), problem, cfg.train.clone())?;
    let input_scale = cfg.effective_input_scale();
    if input_scale != 1.0 {
        let first = trainer.problem().spec.layers()[0];
        for i in 0..first.inputs {
            for o in 0..first.outputs {
                trainer.params[first.w(i, o)] /= input_scale as f32;
            }
        }
    }
    if cfg.blocks > 0 {
        trainer.set_mask(crate::nn::block_sparse_mask(
            &trainer.problem().spec,
            cfg.blocks,
        )?)?;
    }
    if cfg.separate {
        // Each network gets the reference initialisation for its own fan-in (N times smaller
        // than the wide layer's after the first layer).
        let spec = trainer.problem().spec.clone();
        let gain = (cfg.neig as f32).sqrt();
        for ly in spec.layers().iter().skip(1) {
            for i in 0..ly.inputs {
                for o in 0..ly.outputs {
                    trainer.params[ly.w(i, o)] *= gain;
                }
            }
        }
        trainer.set_mask(crate::nn::separate_networks_mask(&spec)?)?;
    }
    Ok(trainer)
}

/// The CSV's columns: per step the loss, diag Λ, its EMA, diag Σ̄, Σ̄'s correlation condition
/// and the step's health ([`training::HEALTH_COLUMNS`]).
fn csv_header(n: usize) -> String {
    let mut h = vec!["step".to_string(), "loss".to_string()];
    h.extend((0..n).map(|k| format!("lambda_{k}")));
    h.extend((0..n).map(|k| format!("lambda_ema_{k}")));
    h.extend((0..n).map(|k| format!("sigma_{k}")));
    h.push("sigma_condition".into());
    h.extend(training::HEALTH_COLUMNS.iter().map(|c| c.to_string()));
    h.join(",")
}

/// Points of the held-out curve's fixed sample.
pub const HELDOUT_SAMPLES: usize = 4096;

/// The held-out curve: the evaluation's estimator (the exact Laplacian by default) on a fixed
/// sample of the fixed importance proposal, with its weights — the same points every time.
fn heldout<'a>(ctx: &Arc<GpuContext>, cfg: &'a SchrodingerConfig) -> Result<Option<Heldout<'a>>> {
    if cfg.heldout_every == 0 {
        return Ok(None);
    }
    let operator = cfg.operator(ctx, cfg.evaluation_laplacian())?;
    let mut sampler = cfg.fixed_proposal()?;
    let seed = cfg.train.seed ^ 0x4E1D;
    Ok(Some(Heldout {
        every: cfg.heldout_every,
        eval: Box::new(move |t: &mut Trainer| {
            let e = t.evaluate_on(
                operator.clone(),
                &mut sampler,
                HELDOUT_SAMPLES,
                HELDOUT_SAMPLES,
                seed,
            )?;
            Ok(e.eigenvalues)
        }),
    }))
}

/// The loop's hooks: the adaptive proposal's refits, the CSV row, the estimates shown.
fn hooks<'a>(cfg: &'a SchrodingerConfig, heldout: Option<Heldout<'a>>) -> Hooks<'a> {
    Hooks {
        heldout,
        before_step: Box::new(move |t: &mut Trainer| {
            if t.step > 0 && cfg.rotate_every > 0 && t.step.is_multiple_of(cfg.rotate_every) {
                let seed = cfg.train.seed ^ 0x2077 ^ t.step.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                t.rotate_readout(super::config::ROTATE_SAMPLES, 8192, seed)?;
            }
            if t.step > 0 && cfg.adapt_every > 0 && t.step.is_multiple_of(cfg.adapt_every) {
                refit_proposal(t, cfg)?;
            }
            Ok(())
        }),
        csv_row: Box::new(|r| {
            let health = training::health_values(&r.health);
            let values = std::iter::once(&r.loss)
                .chain(&r.eigenvalues)
                .chain(&r.eigenvalues_ema)
                .chain(&r.sigma_diag)
                .chain(std::iter::once(&r.sigma_condition))
                .chain(&health);
            training::csv_row(r.step, values, None)
        }),
        status: Box::new(|r| {
            let shown: Vec<String> = r
                .eigenvalues_ema
                .iter()
                .take(9)
                .map(|v| format!("{v:.4}"))
                .collect();
            format!(
                "loss {:.5}  λ [{}]  cond Σ̄ {:.3e}",
                r.loss,
                shown.join(", "),
                r.sigma_condition
            )
        }),
    }
}

/// An evaluation's eigenvalues, standard errors and (with exact values) errors, as JSON.
fn summary(e: &Evaluation, exact: Option<&[f64]>) -> serde_json::Value {
    let mut j = serde_json::json!({
        "eigenvalues": e.eigenvalues,
        "eigenvalue_std_errors": e.eigenvalue_std_errors,
        "lambda_diag": e.lambda_diag,
        "eval_samples": e.samples,
    });
    if let Some(x) = exact {
        let rel = relative_errors(&e.eigenvalues, x);
        j["mean_relative_error"] =
            serde_json::json!(rel.iter().sum::<f64>() / rel.len().max(1) as f64);
        j["max_relative_error"] = serde_json::json!(rel.iter().cloned().fold(0.0, f64::max));
        j["relative_errors"] = serde_json::json!(rel);
    }
    j
}

/// The read-out refit after a successful run (a failed refit keeps the trained network and says
/// why); when it is kept, the checkpoint gains the refitted θ and the evaluation is redone.
/// Returns the final evaluation and, when the refit ran, the trained network's summary and what
/// the refit did.
fn refit_and_evaluate(
    trainer: &mut Trainer,
    cfg: &SchrodingerConfig,
    spec: &RunSpec,
    eval: Evaluation,
    train_seconds: f64,
) -> Result<(Evaluation, Option<serde_json::Value>, Option<ReadoutRefit>)> {
    let trained = Some(summary(&eval, cfg.exact_eigenvalues().as_deref()));
    let fit_start = std::time::Instant::now();
    let trained_params = trainer.params.clone();
    let kept = match readout_refit(trainer, cfg) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("read-out refit failed, the trained network is kept: {e}");
            trainer.params = trained_params.clone();
            ReadoutRefit {
                error: Some(e.to_string()),
                ..Default::default()
            }
        }
    };
    if kept.error.is_none() {
        eprintln!(
            "read-out refit ({:.1} s): Σλ on a validation sample {:.6} (trained network {:.6}); {}",
            fit_start.elapsed().as_secs_f64(),
            kept.validation_refit,
            kept.validation_trained,
            if kept.kept {
                "kept"
            } else {
                "not kept: the trained read-out is better"
            }
        );
    }
    if !kept.kept {
        return Ok((eval, trained, Some(kept)));
    }
    // The checkpoint keeps the trained θ to resume from and the refitted one for `spin eval`.
    let mut state = trainer.state()?;
    state.train_seconds = train_seconds;
    state.final_params = std::mem::replace(&mut state.params, trained_params);
    checkpoint::save(&spec.out, &state, &spec.run_json)?;
    Ok((evaluate_to_target(trainer, cfg)?, trained, Some(kept)))
}

/// Trains (or continues) a Schrödinger run, writing into `out`: `eigenvalues.csv` as it goes,
/// checkpoints, and at the end `metrics.json`, `eigenvalues.png`, `eigenfunctions.png`.
/// Returns the metrics.
pub fn run(
    ctx: Arc<GpuContext>,
    cfg: &SchrodingerConfig,
    out: &Path,
    resume: Option<TrainerState>,
) -> Result<serde_json::Value> {
    cfg.validate()?;
    let n = GRID_REFERENCE_N;
    match cfg.prepare_expression_reference(&ctx) {
        Ok(Some(true)) => eprintln!(
            "reference: the finite-difference grid at {n} and {} points per axis, \
             Richardson-extrapolated",
            2 * n + 1
        ),
        Ok(Some(false)) => eprintln!(
            "no reference: the grid's eigenvalues moved by more than {}% from {n} to {} points \
             per axis (a singular potential?)",
            100.0 * EXPRESSION_REFERENCE_TOLERANCE,
            2 * n + 1
        ),
        Ok(None) => {}
        Err(e) => eprintln!("no reference: the grid failed: {e}"),
    }
    let mut trainer = new_trainer(&ctx, cfg)?;
    if let Some(state) = &resume {
        trainer.restore(state)?;
    }
    let earlier = resume.as_ref().map_or(0.0, |s| s.train_seconds);
    let spec = RunSpec {
        out: out.to_path_buf(),
        run_json: serde_json::json!({ "experiment": "schrodinger", "config": cfg }),
        steps: cfg.train.steps,
        time_limit: cfg.time_limit,
        checkpoint_every: cfg.checkpoint_every,
        earlier_seconds: earlier,
        csv_header: csv_header(cfg.neig),
    };
    let outcome = training::train(&mut trainer, &spec, hooks(cfg, heldout(&ctx, cfg)?))?;
    if outcome.failure.is_none() {
        refit_proposal(&mut trainer, cfg)?;
    }
    let eval_start = std::time::Instant::now();
    let mut eval = evaluate_to_target(&mut trainer, cfg)?;
    let (mut trained, mut refit) = (None, None);
    // A run stopped by a failed step is at its last good state: refit that one too.
    if cfg.readout_refit && trainer.problem().spec.supports_tangents() {
        let seconds = earlier + outcome.wall;
        (eval, trained, refit) = refit_and_evaluate(&mut trainer, cfg, &spec, eval, seconds)?;
    }
    let metrics = metrics(
        &ctx,
        cfg,
        &trainer,
        &outcome,
        &eval,
        (trained, refit),
        eval_start,
        earlier,
    );
    let mut metrics = metrics;
    if cfg.particles > 1 {
        let parity = exchange_parity(&trainer, cfg, &eval)?;
        metrics["exchange_parity"] = serde_json::json!(parity);
        metrics["exchange_labels"] = serde_json::json!(parity
            .iter()
            .map(|p| super::parity_label(*p))
            .collect::<Vec<_>>());
        if let Some((_, parities)) = cfg.exact_levels() {
            metrics["exact_exchange_parity"] = serde_json::json!(parities);
        }
        metrics["exchange"] = serde_json::json!(cfg.exchange);
    }
    crate::io::write_json(&out.join("metrics.json"), &metrics)?;
    let exact = cfg.exact_eigenvalues();
    figures::curves(out, cfg, exact.as_deref())?;
    figures::health(out, cfg, exact.as_deref())?;
    figures::eigenfunctions(out, cfg, &trainer, &eval)?;
    match outcome.failure {
        Some(e) => Err(e),
        None => Ok(metrics),
    }
}

/// Points of the exchange-parity estimate.
pub const PARITY_SAMPLES: usize = 1 << 16;

/// The exchange parity ⟨r(Px) r(x)⟩/⟨r²⟩ of each Ritz function r of the evaluation (in the
/// order of its ascending eigenvalues), P swapping particles 0 and 1, on [`PARITY_SAMPLES`]
/// points of the run's proposal with their weights.
pub fn exchange_parity(
    trainer: &Trainer,
    cfg: &SchrodingerConfig,
    eval: &Evaluation,
) -> Result<Vec<f64>> {
    use rand::SeedableRng;
    let n = cfg.neig;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.train.seed ^ 0x9A41);
    let (points, weights) = trainer.problem().sampler.sample(&mut rng, PARITY_SAMPLES);
    let swapped = super::swap_particles(&points, cfg.dim, cfg.particle_dim());
    let v = trainer.eigenfunctions(&points, &eval.sigma)?;
    let vp = trainer.eigenfunctions(&swapped, &eval.sigma)?;
    // The Ritz vectors of (Λ + Λᵀ)/2, Λ = L⁻¹ Π L⁻ᵀ, ascending: the functions whose
    // eigenvalues the table shows.
    let m = |x: &[f64]| nalgebra::DMatrix::from_fn(n, n, |i, j| x[i * n + j]);
    let l = crate::spin::host::cholesky(&m(&eval.sigma))?;
    let l_inv = l
        .solve_lower_triangular(&nalgebra::DMatrix::identity(n, n))
        .ok_or(crate::error::SpinError::Cholesky {
            feature: 0,
            pivot: 0.0,
        })?;
    let lambda = &l_inv * m(&eval.pi) * l_inv.transpose();
    let eig = ((&lambda + lambda.transpose()) * 0.5).symmetric_eigen();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b]));
    let rotate = |vals: &[f64]| -> Vec<f64> {
        let rows = vals.len() / n;
        let mut out = vec![0.0; rows * n];
        for r in 0..rows {
            for (k, &c) in order.iter().enumerate() {
                out[r * n + k] = (0..n)
                    .map(|j| vals[r * n + j] * eig.eigenvectors[(j, c)])
                    .sum();
            }
        }
        out
    };
    Ok(super::exchange_parities(
        &rotate(&v),
        &rotate(&vp),
        &weights,
        n,
    ))
}

/// `metrics.json`: the final evaluation's summary, the run's configuration and timings, and
/// the trained network's evaluation beside the refit's.
#[allow(clippy::too_many_arguments)]
fn metrics(
    ctx: &GpuContext,
    cfg: &SchrodingerConfig,
    trainer: &Trainer,
    outcome: &Outcome,
    eval: &Evaluation,
    (trained, refit): (Option<serde_json::Value>, Option<ReadoutRefit>),
    eval_start: std::time::Instant,
    earlier: f64,
) -> serde_json::Value {
    let exact = cfg.exact_eigenvalues();
    let done = outcome.steps(trainer);
    let wall = outcome.wall;
    let mut metrics = summary(eval, exact.as_deref());
    let run_fields = serde_json::json!({
        "experiment": "schrodinger",
        "config": cfg,
        "eval_seconds": eval_start.elapsed().as_secs_f64(),
        "eval_max_relative_std_error": max_relative_std_error(eval),
        "steps": trainer.step,
        "steps_this_run": done,
        "stopped_by_time_limit": outcome.stopped_by_time,
        "stopped_by_error": outcome.failure.as_ref().map(|e| e.to_string()),
        "wall_seconds": wall,
        "train_seconds_all_invocations": earlier + wall,
        "steps_per_second": outcome.steps_per_second(trainer),
        "clipped_updates": trainer.optimizer.clipped,
        "guard": outcome.guard_metrics(trainer),
        "degenerate_batches": trainer.degenerate_batches,
        "heldout_seconds": outcome.heldout_seconds,
        "heldout_share_of_training": outcome.heldout_seconds / wall.max(1e-9),
        "adapter": ctx.adapter().name,
        "parallel": trainer.parallel_metrics(),
        "trained_network": trained,
        "readout_refit": refit,
        "objective": trainer.objective_metrics(),
    });
    if let (Some(m), serde_json::Value::Object(fields)) = (metrics.as_object_mut(), run_fields) {
        m.extend(fields);
    }
    if let Some(e) = &exact {
        metrics["exact_eigenvalues"] = serde_json::json!(e);
        if cfg.builtin_potential().is_none() {
            metrics["exact_source"] = serde_json::json!(format!(
                "finite-difference grid at {GRID_REFERENCE_N} and {} points per axis, \
                 Richardson-extrapolated",
                2 * GRID_REFERENCE_N + 1
            ));
        }
        metrics["relative_errors_diag"] = serde_json::json!(relative_errors(&eval.lambda_diag, e));
        metrics["below_exact_by_2_std_errors"] = serde_json::json!(below_exact(
            &eval.eigenvalues,
            &eval.eigenvalue_std_errors,
            e
        ));
    }
    metrics
}
