//! A graph's model: the graph of a configuration, the standardised node features the network
//! reads, the trainer and its read-out, and the eigenfunctions of a saved run at new nodes.

use std::sync::Arc;

use nalgebra::DMatrix;

use super::exact::Form;
use super::sampler::EdgeSampler;
use super::{EdgeSource, GraphConfig};
use crate::data::graph::{self, Graph};
use crate::error::{Result, SpinError};
use crate::gpu::GpuContext;
use crate::operators::Operator;
use crate::spin::checkpoint::TrainerState;
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
pub(super) fn times(a: &[f64], c: &DMatrix<f64>) -> Vec<f64> {
    let (k, m) = (c.nrows(), c.ncols());
    let mut out = vec![0.0; a.len() / k * m];
    for (row, o) in a.chunks(k).zip(out.chunks_mut(m)) {
        for (j, oj) in o.iter_mut().enumerate() {
            *oj = row.iter().enumerate().map(|(i, v)| v * c[(i, j)]).sum();
        }
    }
    out
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
