//! A graph run: the graph, the model on standardised features, the shared training loop with
//! an exact curve, then the exact evaluation, the refit, the reference eigenpairs, the
//! out-of-sample values, figures and `metrics.json`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use nalgebra::DMatrix;

use super::exact::{self, Form};
use super::model::{load_graph, times, GraphModel};
use super::outputs::{figures, held_out_sequence, test_eigenfunctions};
use super::{EdgeSource, GraphConfig, CURVE_MAX_NODES};
use crate::data::graph::Graph;
use crate::error::Result;
use crate::experiments::training::{self, Heldout, RunSpec};
use crate::gpu::GpuContext;
use crate::spin::checkpoint::{self, TrainerState};
use crate::spin::host::lowest_ritz_pairs;
use crate::spin::Trainer;

/// Exact Ritz pairs over the whole graph of the functions f = [hidden, 1] · `c`... given as
/// values `u` (n, k): ascending values and the (k, N) coefficients of the N lowest.
fn exact_ritz(
    graph: &Graph,
    form: Form,
    u: &[f64],
    k: usize,
    n: usize,
) -> Result<(Vec<f64>, DMatrix<f64>)> {
    let (sigma, pi) = exact::moments(graph, form, u, k);
    lowest_ritz_pairs(&sigma, &pi, n, 1e-10)
}

/// Trains (or resumes) and evaluates; writes metrics.json, eigenvalues.csv, heldout.csv,
/// curves.png, eigenfunctions.png (2D/3D features), test-eigenfunctions.csv (with test nodes)
/// and the checkpoint into `out`.
pub fn run(
    ctx: Arc<GpuContext>,
    cfg: &GraphConfig,
    out: &Path,
    resume: Option<TrainerState>,
) -> Result<serde_json::Value> {
    let t0 = Instant::now();
    let (graph, knn_sigma) = load_graph(cfg)?;
    let build_seconds = t0.elapsed().as_secs_f64();
    eprintln!(
        "graph: {} nodes of {} features, {} edges{} ({build_seconds:.1} s)",
        graph.n,
        graph.dim,
        graph.edges.len(),
        knn_sigma.map_or(String::new(), |s| format!(", kNN bandwidth σ = {s:.4}"))
    );
    let mut model = GraphModel::new(ctx.clone(), cfg, &graph)?;
    if let Some(state) = &resume {
        model.trainer.restore(state)?;
    }
    let n = cfg.neig;
    let spec = run_spec(cfg, &model, &graph, out, resume.as_ref());
    let inputs = model.standardizer.apply(&graph.features);
    let curve = (cfg.heldout_every > 0 && graph.n <= CURVE_MAX_NODES).then(|| Heldout {
        every: cfg.heldout_every,
        eval: Box::new(|t: &mut Trainer| {
            let u = t.outputs(&inputs)?;
            // NaN while the outputs span fewer than N directions (a feature still constant).
            Ok(exact_ritz(&graph, cfg.laplacian, &u, n, n).map_or(vec![f64::NAN; n], |r| r.0))
        }),
    });
    let outcome = training::train(&mut model.trainer, &spec, training::eigen_hooks(curve, 0))?;

    // The trained network, exactly over the whole graph.
    let t_eval = Instant::now();
    let h_all = model.hidden(&graph.features)?;
    let width = h_all.len() / graph.n;
    let w_last = model.last_layer()?;
    let Readout {
        values,
        readout,
        trained_values,
        refit_values,
        trained_readout,
        use_refit,
    } = choose_readout(&graph, cfg, &h_all, width, &w_last)?;
    model.readout = Some(readout.clone());
    let eval_seconds = t_eval.elapsed().as_secs_f64();
    let linear = linear_yardstick(&model, &graph, cfg);
    let linear_values = linear.as_ref().map(|(v, _)| v.clone());
    let f_all = times(&h_all, &readout);

    let (reference, exact_values) = exact_reference(
        &graph,
        cfg,
        &values,
        &f_all,
        &h_all,
        trained_readout.as_ref(),
    )?;

    let test = test_eigenfunctions(&mut model, cfg, &graph, knn_sigma, out)?;
    let test_sequence = held_out_sequence(&mut model, cfg, &graph, linear.as_ref().map(|l| &l.1))?;
    figures(cfg, &graph, out, &f_all, &values, exact_values.as_deref())?;

    save_readout(out, &readout)?;

    let metrics = serde_json::json!({
        "command": "graph",
        "config": cfg,
        "nodes": graph.n,
        "edges": graph.edges.len(),
        "feature_dim": graph.dim,
        "knn_bandwidth": knn_sigma,
        "graph_build_seconds": build_seconds,
        "eigenvalues": values,
        "trained_network_eigenvalues": trained_values,
        "refit_eigenvalues": refit_values,
        "linear_eigenvalues": linear_values,
        "readout": if use_refit { "refit" } else { "trained" },
        "exact": reference,
        "test": test,
        "test_sequence": test_sequence,
        "evaluation_seconds": eval_seconds,
        "steps": model.trainer.step,
        "wall_seconds": outcome.wall,
        "steps_per_second": outcome.steps_per_second(&model.trainer),
        "guard": outcome.guard_metrics(&model.trainer),
        "degenerate_batches": model.trainer.degenerate_batches,
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

/// The read-out a graph run keeps, with what it was chosen from.
struct Readout {
    /// The kept read-out's exact Ritz values.
    values: Vec<f64>,
    /// The kept read-out ((H + 1) × N, the constant last).
    readout: DMatrix<f64>,
    /// The trained network's own Ritz values (None: its outputs span fewer than N directions).
    trained_values: Option<Vec<f64>>,
    /// The refit's Ritz values (None: off or failed).
    refit_values: Option<Vec<f64>>,
    /// The trained network's read-out, rotated to its Ritz vectors.
    trained_readout: Option<DMatrix<f64>>,
    /// Whether the refit was kept.
    use_refit: bool,
}

/// The trained network's own Ritz pairs over the whole graph, and the refit's on the last hidden
/// layer `h_all` (`width` units); the lower sum is kept ([`crate::experiments::readout::refit_wins`]).
/// Either may fail on a basis that spans fewer than N directions (a dead feature); an error only
/// when both do.
fn choose_readout(
    graph: &Graph,
    cfg: &GraphConfig,
    h_all: &[f64],
    width: usize,
    w_last: &DMatrix<f64>,
) -> Result<Readout> {
    let n = cfg.neig;
    let u = times(h_all, w_last);
    let trained = exact_ritz(graph, cfg.laplacian, &u, n, n).map(|(v, rot)| (v, w_last * rot));
    let refit = if cfg.readout_refit {
        Some(exact_ritz(graph, cfg.laplacian, h_all, width, n))
    } else {
        None
    };
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    let (trained_values, trained_readout) = match &trained {
        Ok((v, c)) => (Some(v.clone()), Some(c.clone())),
        Err(e) => {
            eprintln!("the trained network's outputs span fewer than N directions: {e}");
            (None, None)
        }
    };
    let refit_values = match &refit {
        Some(Ok((v, _))) => Some(v.clone()),
        Some(Err(e)) => {
            eprintln!("read-out refit failed: {e}");
            None
        }
        None => None,
    };
    let use_refit = match &refit {
        Some(Ok((rv, _))) => crate::experiments::readout::refit_wins(
            trained.as_ref().map_or(f64::NAN, |(tv, _)| sum(tv)),
            sum(rv),
        ),
        _ => false,
    };
    let (values, readout) = match (use_refit, trained, refit) {
        (true, _, Some(Ok(r))) => r,
        (false, Ok(t), _) => t,
        (_, Err(e), _) => return Err(e),
        _ => unreachable!("the refit is used only when it succeeded"),
    };
    Ok(Readout {
        values,
        readout,
        trained_values,
        refit_values,
        trained_readout,
        use_refit,
    })
}

/// The linear yardstick: Rayleigh–Ritz on span(1, node features) over the whole graph — linear
/// Laplacian eigenmaps (locality preserving projections); with `--sequence`, linear slow feature
/// analysis of the time series.
/// Its Ritz values and coefficients ((d + 1) × N on [1, standardised features]).
fn linear_yardstick(
    model: &GraphModel,
    graph: &Graph,
    cfg: &GraphConfig,
) -> Option<(Vec<f64>, DMatrix<f64>)> {
    let basis = linear_basis(model, &graph.features, graph.dim);
    exact_ritz(
        graph,
        cfg.laplacian,
        &basis,
        graph.dim + 1,
        cfg.neig.min(graph.dim + 1),
    )
    .ok()
}

/// The rows [1, standardised features] of the linear yardstick's basis.
pub(super) fn linear_basis(model: &GraphModel, features: &[f64], d: usize) -> Vec<f64> {
    let x = model.standardizer.apply(features);
    let mut basis = Vec::with_capacity(x.len() / d.max(1) * (d + 1));
    for row in x.chunks(d) {
        basis.push(1.0);
        basis.extend_from_slice(row);
    }
    basis
}

/// The sparse eigensolver's reference when the graph fits (and is not a time series' path graph,
/// whose eigenvectors are functions of time, not of the features): its eigenvalues, our relative
/// errors and how well the learned functions (`f_all`, and the trained network's) span the exact
/// eigenvectors. Null and None otherwise.
fn exact_reference(
    graph: &Graph,
    cfg: &GraphConfig,
    values: &[f64],
    f_all: &[f64],
    h_all: &[f64],
    trained_readout: Option<&DMatrix<f64>>,
) -> Result<(serde_json::Value, Option<Vec<f64>>)> {
    let n = cfg.neig;
    let sequence = matches!(cfg.edges, EdgeSource::Sequence(_));
    if graph.n > cfg.exact_max_nodes || n >= graph.n || sequence {
        return Ok((serde_json::Value::Null, None));
    }
    let t = Instant::now();
    match exact::reference_eigenpairs(graph, cfg.laplacian, n) {
        Ok((ev, vecs)) => {
            let seconds = t.elapsed().as_secs_f64();
            let w = cfg.laplacian.node_weights(graph);
            let fit = exact::subspace_fit(f_all, n, &vecs, &w)?;
            let trained_fit = match trained_readout {
                Some(c) => Some(exact::subspace_fit(&times(h_all, c), n, &vecs, &w)?),
                None => None,
            };
            let scale = ev.get(1).copied().unwrap_or(1.0).abs().max(1e-300);
            let participation: Vec<f64> =
                vecs.iter().map(|f| exact::participation(f, &w)).collect();
            let reference = serde_json::json!({
                "solver": "faer Krylov–Schur (partial_self_adjoint_eigen), f64",
                "eigenvalues": ev,
                "seconds": seconds,
                // λ₀ = 0 is measured against λ₁.
                "relative_errors": values.iter().zip(&ev).map(|(a, b)| {
                    (a - b).abs() / if b.abs() > 1e-6 * scale { b.abs() } else { scale }
                }).collect::<Vec<_>>(),
                "subspace": fit,
                "trained_network_subspace": trained_fit,
                // How many nodes carry each exact eigenvector (participation number).
                "participation": participation,
            });
            Ok((reference, Some(ev)))
        }
        Err(e) => {
            eprintln!("the sparse eigensolver failed: {e}");
            Ok((serde_json::Value::Null, None))
        }
    }
}

/// The shared loop's settings for a graph run: its run folder, what the checkpoint records
/// (the configuration, the input standardisation), steps, limits and the CSV header.
fn run_spec(
    cfg: &GraphConfig,
    model: &GraphModel,
    graph: &Graph,
    out: &Path,
    resume: Option<&TrainerState>,
) -> RunSpec {
    RunSpec {
        out: out.to_path_buf(),
        run_json: serde_json::json!({
            "kind": "graph",
            "config": cfg,
            "standardizer": model.standardizer,
            "input_dim": graph.dim,
        }),
        steps: cfg.train.steps,
        time_limit: cfg.time_limit,
        checkpoint_every: cfg.checkpoint_every,
        earlier_seconds: resume.map_or(0.0, |s| s.train_seconds),
        csv_header: training::eigen_csv_header(cfg.neig),
    }
}

/// Writes the read-out into the run's checkpoint beside the trained θ, for `spin eval`.
fn save_readout(out: &Path, readout: &DMatrix<f64>) -> Result<()> {
    let (mut state, run_json) = checkpoint::load(out)?;
    state.readout = readout.as_slice().to_vec();
    // Stored as (H + 0 + 1, N): H hidden units, no coordinates, the constant.
    state.readout_shape = [readout.nrows() - 1, 0, readout.ncols()];
    checkpoint::save(out, &state, &run_json)
}
