//! A graph run: the graph, the model on standardised features, the shared training loop with
//! an exact curve, then the exact evaluation, the refit, the reference eigenpairs, the
//! out-of-sample values, figures and `metrics.json`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use nalgebra::DMatrix;

use super::exact::{self, Form, SubspaceFit};
use super::sampler::EdgeSampler;
use super::{EdgeSource, GraphConfig, CURVE_MAX_NODES};
use crate::data::graph::{self, Graph};
use crate::error::{Result, SpinError};
use crate::experiments::training::{self, Heldout, RunSpec};
use crate::gpu::GpuContext;
use crate::operators::Operator;
use crate::spin::checkpoint::{self, TrainerState};
use crate::spin::host::lowest_ritz_pairs;
use crate::spin::{Problem, Trainer};

/// Per-column z-scores of the node features: what the network reads.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Standardizer {
    /// Column means.
    pub mean: Vec<f64>,
    /// Column standard deviations (1 where a column is constant).
    pub scale: Vec<f64>,
}

impl Standardizer {
    /// Fitted on `x` (rows, dim).
    pub fn fit(x: &[f64], dim: usize) -> Self {
        let rows = (x.len() / dim).max(1) as f64;
        let mut mean = vec![0.0; dim];
        for r in x.chunks(dim) {
            for (m, v) in mean.iter_mut().zip(r) {
                *m += v / rows;
            }
        }
        let mut var = vec![0.0; dim];
        for r in x.chunks(dim) {
            for ((s, v), m) in var.iter_mut().zip(r).zip(&mean) {
                *s += (v - m) * (v - m) / rows;
            }
        }
        let scale = var
            .iter()
            .map(|v| if *v > 1e-24 { v.sqrt() } else { 1.0 })
            .collect();
        Self { mean, scale }
    }

    /// The z-scores of `x` (rows, dim).
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        let d = self.mean.len();
        x.iter()
            .enumerate()
            .map(|(i, v)| (v - self.mean[i % d]) / self.scale[i % d])
            .collect()
    }
}

/// The graph of a configuration (and σ of a kNN graph's weights).
pub fn load_graph(cfg: &GraphConfig) -> Result<(Graph, Option<f64>)> {
    let nodes = graph::read_nodes(&cfg.nodes)?;
    let (n, dim) = (nodes.rows, nodes.cols);
    let mut sigma = None;
    let (edges, weights) = match &cfg.edges {
        EdgeSource::File(path) => graph::read_edges(path, n)?,
        EdgeSource::Sequence(starts) => {
            let starts = match starts {
                Some(p) => graph::read_episode_starts(p, n)?,
                None => Vec::new(),
            };
            graph::sequence_edges(n, &starts)?
        }
        EdgeSource::Knn { k, bandwidth } => {
            let nb = graph::nearest_neighbours(&nodes.values, dim, *k)?;
            let (e, w, s) = graph::knn_edges(&nb, *bandwidth)?;
            sigma = Some(s);
            (e, w)
        }
    };
    let g = Graph {
        n,
        dim,
        features: nodes.values,
        edges,
        weights,
    };
    if cfg.laplacian == Form::RandomWalk {
        g.check_no_isolated()?;
    }
    Ok((g, sigma))
}

/// A trained graph network and its final read-out.
pub struct GraphModel {
    /// The SpIN trainer.
    pub trainer: Trainer,
    /// The network's input standardisation.
    pub standardizer: Standardizer,
    /// The ordered eigenfunctions as a read-out of [last hidden layer, 1]: (H + 1, N),
    /// Σ-orthonormal columns in ascending eigenvalue.
    pub readout: Option<DMatrix<f64>>,
}

impl GraphModel {
    /// The model for `cfg` on `graph`.
    pub fn new(ctx: Arc<GpuContext>, cfg: &GraphConfig, graph: &Graph) -> Result<Self> {
        cfg.validate()?;
        let standardizer = Standardizer::fit(&graph.features, graph.dim);
        let inputs = Arc::new(standardizer.apply(&graph.features));
        let uniform = cfg.laplacian == Form::Combinatorial;
        let sampler = EdgeSampler::new(
            inputs,
            graph.dim,
            Arc::new(graph.edges.clone()),
            &graph.weights,
            uniform,
        );
        let problem = Problem {
            spec: cfg.spec(graph.dim),
            operator: Operator::GraphEdges {
                uniform_nodes: uniform,
                scale: cfg.laplacian.batch_scale(graph),
            },
            sampler: Box::new(sampler),
        };
        Ok(Self {
            trainer: Trainer::new(ctx, problem, cfg.train.clone())?,
            standardizer,
            readout: None,
        })
    }

    /// [last hidden layer, 1] at raw `features` (rows, dim) → (rows, H + 1).
    pub fn hidden(&self, features: &[f64]) -> Result<Vec<f64>> {
        let (spec, params) = self.trainer.hidden_layer_network(true)?;
        self.trainer
            .outputs_of(&spec, &params, &self.standardizer.apply(features))
    }

    /// The trained network's outputs at raw `features` (rows, N).
    pub fn outputs(&self, features: &[f64]) -> Result<Vec<f64>> {
        self.trainer.outputs(&self.standardizer.apply(features))
    }

    /// The trained network's last layer as a read-out of [hidden, 1]: (H + 1, N).
    pub fn last_layer(&self) -> Result<DMatrix<f64>> {
        let last = *self
            .trainer
            .problem()
            .spec
            .layers()
            .last()
            .ok_or_else(|| SpinError::Config("no layers".into()))?;
        let (h, n) = (last.inputs, last.outputs);
        let p = &self.trainer.params;
        Ok(DMatrix::from_fn(h + 1, n, |i, j| {
            if i < h {
                p[last.w(i, j)] as f64
            } else {
                p[last.b(j)] as f64
            }
        }))
    }

    /// The ordered eigenfunctions at raw `features` (rows, N), from the read-out.
    pub fn eigenfunctions(&self, features: &[f64]) -> Result<Vec<f64>> {
        let c = self
            .readout
            .as_ref()
            .ok_or_else(|| SpinError::Config("the model has no read-out yet".into()))?;
        let h = self.hidden(features)?;
        Ok(times(&h, c))
    }
}

/// (rows, k) row-major times (k, m) → (rows, m) row-major.
fn times(a: &[f64], c: &DMatrix<f64>) -> Vec<f64> {
    let (k, m) = (c.nrows(), c.ncols());
    let mut out = vec![0.0; a.len() / k * m];
    for (row, o) in a.chunks(k).zip(out.chunks_mut(m)) {
        for (j, oj) in o.iter_mut().enumerate() {
            *oj = row.iter().enumerate().map(|(i, v)| v * c[(i, j)]).sum();
        }
    }
    out
}

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
    let spec = RunSpec {
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
        earlier_seconds: resume.as_ref().map_or(0.0, |s| s.train_seconds),
        csv_header: training::eigen_csv_header(n),
    };
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
    let linear_values = linear_yardstick(&model, &graph, cfg);
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
    figures(cfg, &graph, out, &f_all, &values, exact_values.as_deref())?;

    // The checkpoint holds the read-out beside the trained θ, for `spin eval`.
    let (mut state, run_json) = checkpoint::load(out)?;
    state.readout = readout.as_slice().to_vec();
    // Stored as (H + 0 + 1, N): H hidden units, no coordinates, the constant.
    state.readout_shape = [readout.nrows() - 1, 0, readout.ncols()];
    checkpoint::save(out, &state, &run_json)?;

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
        "evaluation_seconds": eval_seconds,
        "steps": model.trainer.step,
        "wall_seconds": outcome.wall,
        "steps_per_second": outcome.steps(&model.trainer) as f64 / outcome.wall.max(1e-9),
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

/// The learned eigenfunctions at `--test-nodes` (written to test-eigenfunctions.csv) and, for a
/// kNN graph, the out-of-sample check against the union graph. Null without test nodes.
fn test_eigenfunctions(
    model: &mut GraphModel,
    cfg: &GraphConfig,
    graph: &Graph,
    knn_sigma: Option<f64>,
    out: &Path,
) -> Result<serde_json::Value> {
    let n = cfg.neig;
    let mut test = serde_json::Value::Null;
    if let Some(path) = &cfg.test_nodes {
        let t = graph::read_nodes(path)?;
        if t.cols != graph.dim {
            return Err(SpinError::Config(format!(
                "{}: test nodes have {} features, the graph's nodes {}",
                path.display(),
                t.cols,
                graph.dim
            )));
        }
        let f = model.eigenfunctions(&t.values)?;
        write_features(
            &out.join("test-eigenfunctions.csv"),
            &t.values,
            t.cols,
            &f,
            n,
        )?;
        test = serde_json::json!({
            "nodes": t.rows,
            "file": out.join("test-eigenfunctions.csv"),
            "union_graph": out_of_sample(cfg, graph, knn_sigma, &t.values, &f)?,
        });
    }
    Ok(test)
}

/// curves.png (the EMA, the exact held-out Ritz values, the reference dashed) and, for 2D or 3D
/// node features, eigenfunctions.png.
fn figures(
    cfg: &GraphConfig,
    graph: &Graph,
    out: &Path,
    f_all: &[f64],
    values: &[f64],
    exact_values: Option<&[f64]>,
) -> Result<()> {
    let n = cfg.neig;
    let (steps, ema) = training::eigen_ema_curves(&out.join("eigenvalues.csv"), n, 0);
    let (hsteps, held) = training::read_rows(&out.join("heldout.csv"));
    crate::experiments::plot::eigenvalue_curves(
        &out.join("curves.png"),
        &crate::experiments::plot::Curves {
            title: &format!(
                "{}: graph Laplacian eigenvalues during training (N = {n}, {:?})",
                cfg.nodes.display(),
                cfg.laplacian
            ),
            y_label: "λ (Laplacian eigenvalue)",
            steps: &steps,
            ema: &ema,
            ema_label: "EMA of the minibatch diag Λ (rate 0.01), one colour per eigenfunction",
            heldout: (!hsteps.is_empty()).then_some((&hsteps[..], &held[..])),
            heldout_label: "exact Ritz values of the trained network over the whole graph",
            exact: exact_values,
        },
    )?;
    if graph.dim == 2 || graph.dim == 3 {
        node_panels(graph, f_all, n, values, &out.join("eigenfunctions.png"))?;
    }
    Ok(())
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
fn linear_yardstick(model: &GraphModel, graph: &Graph, cfg: &GraphConfig) -> Option<Vec<f64>> {
    let x = model.standardizer.apply(&graph.features);
    let d = graph.dim;
    let mut basis = Vec::with_capacity(graph.n * (d + 1));
    for row in x.chunks(d) {
        basis.push(1.0);
        basis.extend_from_slice(row);
    }
    exact_ritz(graph, cfg.laplacian, &basis, d + 1, cfg.neig.min(d + 1))
        .map(|(v, _)| v)
        .ok()
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
            });
            Ok((reference, Some(ev)))
        }
        Err(e) => {
            eprintln!("the sparse eigensolver failed: {e}");
            Ok((serde_json::Value::Null, None))
        }
    }
}

/// The out-of-sample check of a kNN graph: the exact eigenvectors of the kNN graph of the
/// training and test nodes together (same K and σ), restricted to the test nodes and
/// regressed on the learned eigenfunctions there. Null for other graphs or when too large.
fn out_of_sample(
    cfg: &GraphConfig,
    graph: &Graph,
    sigma: Option<f64>,
    test: &[f64],
    f: &[f64],
) -> Result<serde_json::Value> {
    let (EdgeSource::Knn { k, .. }, Some(sigma)) = (&cfg.edges, sigma) else {
        return Ok(serde_json::Value::Null);
    };
    let dim = graph.dim;
    let m = test.len() / dim;
    let total = graph.n + m;
    if total > cfg.exact_max_nodes {
        return Ok(serde_json::Value::Null);
    }
    let mut features = graph.features.clone();
    features.extend_from_slice(test);
    let nb = graph::nearest_neighbours(&features, dim, *k)?;
    let (edges, weights, _) = graph::knn_edges(&nb, Some(sigma))?;
    let union = Graph {
        n: total,
        dim,
        features,
        edges,
        weights,
    };
    let (ev, vecs) = exact::reference_eigenpairs(&union, cfg.laplacian, cfg.neig)?;
    let w_all = cfg.laplacian.node_weights(&union);
    let w: Vec<f64> = w_all[graph.n..].to_vec();
    let restricted: Vec<Vec<f64>> = vecs.iter().map(|v| v[graph.n..].to_vec()).collect();
    let fit: SubspaceFit = exact::subspace_fit(f, cfg.neig, &restricted, &w)?;
    Ok(serde_json::json!({
        "nodes": total,
        "eigenvalues": ev,
        "test_nodes_subspace": fit,
    }))
}

/// Writes features and eigenfunction values as CSV (x0 … x{d−1}, v0 … v{N−1}).
fn write_features(path: &Path, x: &[f64], dim: usize, f: &[f64], n: usize) -> Result<()> {
    let mut text = (0..dim)
        .map(|i| format!("x{i}"))
        .chain((0..n).map(|k| format!("v{k}")))
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    for (row, vals) in x.chunks(dim).zip(f.chunks(n)) {
        let cells: Vec<String> = row.iter().chain(vals).map(|v| format!("{v:.7e}")).collect();
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    crate::io::write_atomic(path, text.as_bytes())
}

/// Each eigenfunction's mean value on a grid over the nodes' 2D features (3D: longitude and
/// latitude around the features' mean), as heat-map panels.
fn node_panels(graph: &Graph, f: &[f64], n: usize, values: &[f64], path: &Path) -> Result<()> {
    let g = 48;
    let coords: Vec<(f64, f64)> = if graph.dim == 2 {
        graph.features.chunks(2).map(|p| (p[0], p[1])).collect()
    } else {
        let c = Standardizer::fit(&graph.features, 3).mean;
        graph
            .features
            .chunks(3)
            .map(|p| {
                let (x, y, z) = (p[0] - c[0], p[1] - c[1], p[2] - c[2]);
                let r = (x * x + y * y + z * z).sqrt().max(1e-300);
                (y.atan2(x), (z / r).clamp(-1.0, 1.0).asin())
            })
            .collect()
    };
    let (lo_x, hi_x) = bounds(coords.iter().map(|c| c.0));
    let (lo_y, hi_y) = bounds(coords.iter().map(|c| c.1));
    let mut sums = vec![vec![0.0; g * g]; n];
    let mut counts = vec![0usize; g * g];
    for (i, &(x, y)) in coords.iter().enumerate() {
        let cx = (((x - lo_x) / (hi_x - lo_x) * g as f64) as usize).min(g - 1);
        // Rows from the top.
        let cy = (((hi_y - y) / (hi_y - lo_y) * g as f64) as usize).min(g - 1);
        counts[cy * g + cx] += 1;
        for (k, s) in sums.iter_mut().enumerate() {
            s[cy * g + cx] += f[i * n + k];
        }
    }
    let panels: Vec<Vec<f64>> = sums
        .into_iter()
        .map(|s| {
            s.iter()
                .zip(&counts)
                .map(|(v, &c)| if c > 0 { v / c as f64 } else { 0.0 })
                .collect()
        })
        .collect();
    let labels: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(k, v)| format!("v{k}, λ = {v:.5}"))
        .collect();
    let axes = if graph.dim == 2 {
        (
            format!("x0 from {lo_x:.3} to {hi_x:.3}"),
            format!("x1 from {hi_y:.3} (top) to {lo_y:.3}"),
        )
    } else {
        (
            "longitude, −π … π".to_string(),
            "latitude, π/2 … −π/2".to_string(),
        )
    };
    crate::experiments::plot::eigenfunction_panels(
        path,
        &panels,
        g,
        1.0,
        &crate::experiments::plot::Panels {
            title: "learned eigenfunctions: the mean value of the nodes in each cell",
            labels: &labels,
            axes: (&axes.0, &axes.1),
            colour: "eigenfunction value (per panel, / max)",
        },
    )
}

fn bounds(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, lo + 0.5)
    }
}

/// The ordered eigenfunctions of a saved graph run at `points` (rows, dim): the network's last
/// hidden layer and the read-out saved in the checkpoint.
pub fn eigenfunctions_at(
    ctx: Arc<GpuContext>,
    run_json: &serde_json::Value,
    state: &TrainerState,
    points: &[f64],
) -> Result<Vec<f64>> {
    let bad = |m: &str| SpinError::Config(format!("the checkpoint's graph run: {m}"));
    let cfg: GraphConfig =
        serde_json::from_value(run_json["config"].clone()).map_err(|_| bad("no configuration"))?;
    let standardizer: Standardizer = serde_json::from_value(run_json["standardizer"].clone())
        .map_err(|_| bad("no input standardisation"))?;
    let dim = standardizer.mean.len();
    if !points.len().is_multiple_of(dim) {
        return Err(SpinError::Config(format!(
            "the points must have {dim} features each"
        )));
    }
    let [h, m, cols] = state.readout_shape;
    let rows = h + m + 1;
    if state.readout.len() != rows * cols || state.readout.is_empty() {
        return Err(bad("no read-out (the run did not finish its evaluation)"));
    }
    // A stand-in sampler: only the network's shape matters here.
    let problem = Problem {
        spec: cfg.spec(dim),
        operator: Operator::GraphEdges {
            uniform_nodes: false,
            scale: 0.5,
        },
        sampler: Box::new(EdgeSampler::new(
            Arc::new(vec![0.0; 2 * dim]),
            dim,
            Arc::new(vec![[0, 1]]),
            &[1.0],
            false,
        )),
    };
    let mut trainer = Trainer::new(ctx, problem, cfg.train.clone())?;
    trainer.restore(state)?;
    let model = GraphModel {
        trainer,
        standardizer,
        readout: Some(DMatrix::from_column_slice(rows, cols, &state.readout)),
    };
    model.eigenfunctions(points)
}
