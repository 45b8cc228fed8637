//! `spin graph`: eigenfunctions of a graph Laplacian over node features (maths §11) — a graph
//! given as edges, the K-nearest-neighbour graph of a point cloud, or the path graph of a time
//! series (slow feature analysis). A dense network on the (standardised) node features is
//! trained by SpIN on edges drawn by weight; afterwards everything is exact over the whole
//! graph: Σ and Π summed over every node and edge, Rayleigh–Ritz, the read-out refit on the
//! last hidden layer's span, and, when the graph is small enough, a sparse eigensolver's
//! eigenpairs with the principal angles between the learned and exact subspaces.

pub mod exact;
mod model;
mod outputs;
mod run;
pub mod sampler;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use exact::Form;
pub use model::{eigenfunctions_at, load_graph, GraphModel, Standardizer};
pub use run::run;

use crate::error::{Result, SpinError};
use crate::nn::{Activation, NetworkSpec};
use crate::spin::{OptimizerConfig, OptimizerKind, Schedule, TrainConfig};

/// Where a graph's edges come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeSource {
    /// A file of edges `i, j[, w]`.
    File(PathBuf),
    /// The symmetric K-nearest-neighbour graph of the node features, Gaussian weights.
    Knn {
        /// Neighbours per node.
        k: usize,
        /// σ of the weights; `None`: the median distance to the K-th neighbour.
        bandwidth: Option<f64>,
    },
    /// Consecutive rows, cut at the episode starts in the file (if any).
    Sequence(Option<PathBuf>),
}

/// Everything a `spin graph` run is made of.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GraphConfig {
    /// Node features, one row per node.
    pub nodes: PathBuf,
    /// The edges.
    pub edges: EdgeSource,
    /// Nodes not in the graph, whose eigenfunction values are reported (out of sample).
    pub test_nodes: Option<PathBuf>,
    /// With `--sequence`: a held-out time series of the same features, on which each kept
    /// feature's λ, and linear SFA's fitted on the training series, are measured.
    #[serde(default)]
    pub test_sequence: Option<PathBuf>,
    /// Which Laplacian.
    pub laplacian: Form,
    /// Eigenfunctions N, the constant one (λ₀ = 0) included when `constant_first`.
    pub neig: usize,
    /// The first eigenfunction is the constant (exact for a connected graph).
    pub constant_first: bool,
    /// Hidden widths of the dense network.
    pub hidden: Vec<usize>,
    /// Hidden activation.
    pub activation: Activation,
    /// Training hyper-parameters (batch: rows per step = 2 × edges; the combinatorial form
    /// spends half of them on uniform nodes).
    pub train: TrainConfig,
    /// Stop after this many seconds of training.
    pub time_limit: Option<f64>,
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
    /// After training, Rayleigh–Ritz over the whole graph on the span of the last hidden layer
    /// and the constant; kept when its eigenvalue sum is lower.
    pub readout_refit: bool,
    /// Exact Ritz values of the trained network over the whole graph every this many steps
    /// (0: none; graphs of more than [`CURVE_MAX_NODES`] nodes have none).
    pub heldout_every: u64,
    /// The sparse eigensolver's reference for graphs of at most this many nodes (0: never).
    pub exact_max_nodes: usize,
}

/// Graphs above this many nodes get no exact curve during training.
pub const CURVE_MAX_NODES: usize = 200_000;

impl GraphConfig {
    /// Our defaults for the graph on `nodes` with edges from `edges`.
    pub fn ours(nodes: PathBuf, edges: EdgeSource) -> Self {
        Self {
            nodes,
            edges,
            test_nodes: None,
            test_sequence: None,
            laplacian: Form::RandomWalk,
            neig: 9,
            constant_first: true,
            hidden: vec![128, 128, 128],
            activation: Activation::Softplus,
            train: TrainConfig {
                beta: 1.0,
                batch: 1024,
                steps: 4000,
                seed: 0,
                optimizer: OptimizerConfig {
                    schedule: Schedule::Cosine,
                    ..OptimizerConfig::new(OptimizerKind::Adam, 1e-3)
                },
                eigen_ema: 0.01,
                exhaustive: false,
                shift: 0.05,
                gauge: crate::spin::trainer::DEFAULT_GAUGE,
                objective: Default::default(),
                tail: Default::default(),
                whiten_readout: 0.0,
            },
            time_limit: None,
            checkpoint_every: 1000,
            readout_refit: true,
            heldout_every: 250,
            exact_max_nodes: 50_000,
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        let bad = |m: String| Err(SpinError::Config(m));
        let min = 1 + self.constant_first as usize;
        if self.neig < min {
            return bad(format!(
                "--neig must be at least {min} (the constant counts as one), got {}",
                self.neig
            ));
        }
        let multiple = match self.laplacian {
            Form::RandomWalk => 2,
            Form::Combinatorial => 4,
        };
        if self.train.batch < multiple || !self.train.batch.is_multiple_of(multiple) {
            return bad(format!(
                "--batch must be a positive multiple of {multiple} for the {:?} form \
                 (two rows per edge{}), got {}",
                self.laplacian,
                if multiple == 4 {
                    ", and as many uniform nodes"
                } else {
                    ""
                },
                self.train.batch
            ));
        }
        if self.test_sequence.is_some() && !matches!(self.edges, EdgeSource::Sequence(_)) {
            return bad("--test-sequence needs --sequence (a held-out time series)".into());
        }
        if let EdgeSource::Knn { k, .. } = self.edges {
            if k == 0 {
                return bad("--knn must be positive".into());
            }
        }
        Ok(())
    }

    /// The dense network on `dim` features.
    pub fn spec(&self, dim: usize) -> NetworkSpec {
        NetworkSpec {
            input_dim: dim,
            hidden: self.hidden.clone(),
            outputs: self.neig,
            activation: self.activation,
            constant_first: self.constant_first,
            ..Default::default()
        }
    }
}
