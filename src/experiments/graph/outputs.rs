//! What a graph run writes besides its metrics: the learned eigenfunctions at test nodes (and
//! the out-of-sample check against the union graph), curves.png and eigenfunctions.png.

use std::path::Path;

use super::exact::{self, SubspaceFit};
use super::model::{GraphModel, Standardizer};
use super::{EdgeSource, GraphConfig};
use crate::data::graph::{self, Graph};
use crate::error::{Result, SpinError};
use crate::experiments::training;
/// Node features from `path` (at least 2 rows) that must have as many columns as the graph's;
/// the error says "`what` N features, `ours` M".
fn read_like(path: &Path, graph: &Graph, what: &str, ours: &str) -> Result<graph::Table> {
    let t = graph::read_nodes(path)?;
    if t.cols != graph.dim {
        return Err(SpinError::Config(format!(
            "{}: {what} {} features, {ours} {}",
            path.display(),
            t.cols,
            graph.dim
        )));
    }
    Ok(t)
}

/// With `--test-sequence`: each kept feature's λ along the held-out series (fixed coefficients,
/// its own mean and variance there; [`exact::sequence_lambdas`]) and linear SFA's, fitted on the
/// training series (`linear`: its coefficients on [1, standardised features]). Null without one.
pub(super) fn held_out_sequence(
    model: &mut GraphModel,
    cfg: &GraphConfig,
    graph: &Graph,
    linear: Option<&nalgebra::DMatrix<f64>>,
) -> Result<serde_json::Value> {
    let Some(path) = &cfg.test_sequence else {
        return Ok(serde_json::Value::Null);
    };
    let t = read_like(
        path,
        graph,
        "the held-out series has",
        "the training series",
    )?;
    let n = cfg.neig;
    let f = model.eigenfunctions(&t.values)?;
    let mut ours = exact::sequence_lambdas(&f, t.rows, n);
    if cfg.constant_first {
        // The first eigenfunction is the constant (λ₀ = 0); the Ritz vector that stands for it
        // may carry a trace of the hidden units, whose ratio of tiny step to tiny variance on
        // another series would mean nothing.
        ours[0] = 0.0;
    }
    let linear_values = linear.map(|c| {
        let basis = super::run::linear_basis(model, &t.values, t.cols);
        let b = nalgebra::DMatrix::from_row_slice(t.rows, t.cols + 1, &basis);
        // Row-major, as sequence_lambdas reads it.
        let g = (&b * c).transpose();
        exact::sequence_lambdas(g.as_slice(), t.rows, c.ncols())
    });
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    Ok(serde_json::json!({
        "file": path.display().to_string(),
        "rows": t.rows,
        "eigenvalues": ours,
        "sum": sum(&ours),
        "linear_eigenvalues": linear_values,
        "linear_sum": linear_values.as_deref().map(sum),
    }))
}

/// The learned eigenfunctions at `--test-nodes` (written to test-eigenfunctions.csv) and, for a
/// kNN graph, the out-of-sample check against the union graph. Null without test nodes.
pub(super) fn test_eigenfunctions(
    model: &mut GraphModel,
    cfg: &GraphConfig,
    graph: &Graph,
    knn_sigma: Option<f64>,
    out: &Path,
) -> Result<serde_json::Value> {
    let n = cfg.neig;
    let mut test = serde_json::Value::Null;
    if let Some(path) = &cfg.test_nodes {
        let t = read_like(path, graph, "test nodes have", "the graph's nodes")?;
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
pub(super) fn figures(
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
