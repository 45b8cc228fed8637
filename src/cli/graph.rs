//! `spin graph`: Laplacian eigenfunctions of a graph, a point cloud's kNN graph or a time series.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::options::{note, set, NetworkArgs, OptimiserArgs, OutputArgs, TrainingArgs};
use super::Cli;
use spectral_inference::experiments::graph::{self, EdgeSource, Form, GraphConfig};
use spectral_inference::nn::Activation;

/// `spin graph`'s flags.
#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
#[command(group(clap::ArgGroup::new("edge_source").args(["edges", "knn", "sequence"])))]
#[command(mut_arg("steps", |a| note(a, "[default: 4000]")))]
#[command(mut_arg("time_limit", |a| note(a, "Given without --steps, the time limit alone ends the run [default: no limit]")))]
#[command(mut_arg("beta", |a| note(a, "[default: 1]")))]
#[command(mut_arg("shift", |a| note(a, "[default: 0.05]")))]
#[command(mut_arg("tail", |a| note(a, "[default: 0: on the sphere graph (1 024 rows per step) it changed no error at twice the run time, docs/results/robustness.md]")))]
#[command(mut_arg("whiten_readout", |a| note(a, "[default: 0: graph runs have a constant first output, where it does not apply]")))]
#[command(mut_arg("seed", |a| note(a, "[default: 0]")))]
#[command(mut_arg("optimizer", |a| note(a, "[default: adam]")))]
#[command(mut_arg("lr", |a| note(a, "[default: 1e-3]")))]
#[command(mut_arg("schedule", |a| note(a, "[default: cosine]")))]
#[command(mut_arg("clip_grad", |a| note(a, "[default: 0, off]")))]
#[command(mut_arg("guard", |a| note(a, "[default: 0, off: not measured on graphs]")))]
#[command(mut_arg("out", |a| note(a, "[default: runs/graph]")))]
#[command(mut_arg("checkpoint_every", |a| note(a, "[default: 1000]")))]
#[command(mut_arg("resume", |a| note(a, "(--steps, --time-limit, --beta, --readout-refit, --heldout-every may change) [default: a new run]")))]
#[command(mut_arg("hidden", |a| note(a, "[default: 128,128,128]")))]
#[command(mut_arg("blocks", |a| note(a, "(not used by spin graph) [default: 0]")))]
pub struct GraphArgs {
    /// Node features: one row of d numbers per node, CSV (commas, semicolons or spaces; a
    /// header line allowed) or .npy (n×d, float32/float64/int) [default: none, required for a
    /// new run].
    #[arg(long)]
    nodes: Option<PathBuf>,
    /// Undirected weighted edges, one per row `i, j[, w]` (0-based node indices, w = 1 when
    /// absent; an edge listed twice counts twice), CSV or .npy [default: none; one of --edges,
    /// --knn and --sequence].
    #[arg(long)]
    edges: Option<PathBuf>,
    /// Instead of --edges: the symmetric K-nearest-neighbour graph of the node features
    /// (an edge where either node is among the other's K nearest; weight exp(−d²/2σ²))
    /// [default: none].
    #[arg(long, value_name = "K")]
    knn: Option<usize>,
    /// σ of the kNN weights [default: the median distance to the K-th neighbour].
    #[arg(long, requires = "knn")]
    bandwidth: Option<f64>,
    /// Instead of --edges: consecutive rows are the edges (slow feature analysis of a vector
    /// time series; λ = Δ/2 with Δ the mean squared step of a unit-variance feature).
    #[arg(long)]
    sequence: bool,
    /// Row indices where a new episode starts (no edge into them), one per line or .npy
    /// [default: one episode].
    #[arg(long, requires = "sequence")]
    episode_starts: Option<PathBuf>,
    /// With --sequence: a held-out time series of the same features (one episode); each learned
    /// feature's λ along it (coefficients fixed, its own mean and variance there), beside linear
    /// SFA's fitted on the training series. The training series' own values can sit below the
    /// process's, a flexible network fitting that one path (15 % on an Ornstein–Uhlenbeck
    /// series, docs/results/graph.md); these cannot [default: none].
    #[arg(long, requires = "sequence")]
    test_sequence: Option<PathBuf>,
    /// Nodes outside the graph (same features): their eigenfunction values go to
    /// test-eigenfunctions.csv; with --knn also checked against the exact eigenvectors of the
    /// kNN graph of all nodes [default: none].
    #[arg(long)]
    test_nodes: Option<PathBuf>,
    /// random-walk (L f = λ D f, nodes weighted by degree, λ in [0, 2]) or combinatorial
    /// ((D − W) f = λ f, nodes weighted uniformly) [default: random-walk].
    #[arg(long)]
    laplacian: Option<Form>,
    /// Eigenfunctions N, the constant one (λ₀ = 0) included [default: 9].
    #[arg(long)]
    neig: Option<usize>,
    /// Rows per step: two per edge drawn (the combinatorial form spends half on uniform
    /// nodes) [default: 1024].
    #[arg(long)]
    batch: Option<usize>,
    /// Hidden activation: softplus or relu. Measured (docs/results/graph.md): relu lowered Σλ
    /// by 6–8 % on two kNN graphs of point clouds (most levels closer, not every one) and was
    /// two orders of magnitude further on a grid graph, whose modes are smooth in the features
    /// [default: softplus].
    #[arg(long)]
    activation: Option<String>,
    /// After training, Rayleigh–Ritz over the whole graph on the span of the last hidden layer
    /// and the constant; kept when its eigenvalue sum is lower [default: true].
    #[arg(long)]
    readout_refit: Option<bool>,
    /// The exact curve: Ritz values of the trained network over the whole graph every this
    /// many steps (0: none; not above 200 000 nodes) [default: 250].
    #[arg(long)]
    heldout_every: Option<u64>,
    /// The sparse eigensolver's reference (eigenvalues, principal angles) up to this many nodes
    /// (0: never; never with --sequence, whose path graph's eigenvectors are functions of time,
    /// not of the features) [default: 50000].
    #[arg(long)]
    exact_max_nodes: Option<usize>,
    #[command(flatten)]
    network: NetworkArgs,
    #[command(flatten)]
    training: TrainingArgs,
    #[command(flatten)]
    optimiser: OptimiserArgs,
    #[command(flatten)]
    output: OutputArgs,
}

fn new_config(a: &GraphArgs) -> Result<GraphConfig> {
    let nodes = a
        .nodes
        .clone()
        .context("--nodes is needed (one row of features per node)")?;
    let edges = match (&a.edges, a.knn, a.sequence) {
        (Some(p), _, _) => EdgeSource::File(p.clone()),
        (_, Some(k), _) => EdgeSource::Knn {
            k,
            bandwidth: a.bandwidth,
        },
        (_, _, true) => EdgeSource::Sequence(a.episode_starts.clone()),
        _ => anyhow::bail!("give the edges: --edges FILE, --knn K or --sequence"),
    };
    let mut cfg = GraphConfig::ours(nodes, edges);
    cfg.test_nodes = a.test_nodes.clone();
    cfg.test_sequence = a.test_sequence.clone();
    set!(cfg.laplacian, a.laplacian);
    set!(cfg.neig, a.neig);
    set!(cfg.train.batch, a.batch);
    if let Some(h) = &a.network.hidden {
        cfg.hidden = h.0.clone();
    }
    if let Some(act) = &a.activation {
        cfg.activation = Activation::parse(act)?;
    }
    set!(cfg.train.steps, a.training.steps);
    set!(cfg.train.beta, a.training.beta);
    set!(cfg.train.shift, a.training.shift);
    set!(cfg.train.gauge, a.training.gauge);
    set!(cfg.train.whiten_readout, a.training.whiten_readout);
    set!(cfg.train.tail.fraction, a.training.tail);
    set!(cfg.train.tail.beta, a.training.tail_beta);
    set!(cfg.train.objective, a.training.objective);
    set!(cfg.train.seed, a.training.seed);
    set!(cfg.readout_refit, a.readout_refit);
    set!(cfg.heldout_every, a.heldout_every);
    set!(cfg.exact_max_nodes, a.exact_max_nodes);
    set!(cfg.checkpoint_every, a.output.checkpoint_every);
    a.optimiser.apply(&mut cfg.train.optimizer);
    a.training
        .apply_time_limit(&mut cfg.time_limit, &mut cfg.train.steps);
    Ok(cfg)
}

/// Trains, evaluates exactly, writes metrics.json and prints the table.
pub fn run(cli: &Cli, a: &GraphArgs) -> Result<()> {
    let (cfg, out, state) = a.output.resume_or_new(
        "graph",
        "runs/graph",
        |cfg: &mut GraphConfig| {
            set!(cfg.train.steps, a.training.steps);
            set!(cfg.train.beta, a.training.beta);
            set!(cfg.readout_refit, a.readout_refit);
            set!(cfg.heldout_every, a.heldout_every);
            a.training
                .apply_time_limit(&mut cfg.time_limit, &mut cfg.train.steps);
        },
        || new_config(a),
    )?;
    cfg.validate()?;
    let ctx = super::context(cli)?;
    eprintln!("adapter: {}", ctx.adapter().name);
    eprintln!(
        "{}: {:?} Laplacian, N = {} (the constant included), dense {:?} {:?}, {} rows per step, {:?} lr {}, β {}",
        cfg.nodes.display(),
        cfg.laplacian,
        cfg.neig,
        cfg.hidden,
        cfg.activation,
        cfg.train.batch,
        cfg.train.optimizer.kind,
        cfg.train.optimizer.lr,
        cfg.train.beta
    );
    super::seeds::run(
        a.training.seeds,
        &cfg,
        |c| &mut c.train.seed,
        super::seeds::GRAPH,
        &out,
        state,
        |c, dir, state| {
            let m = graph::run(ctx.clone(), c, dir, state)?;
            print_results(&m);
            println!("wrote {}", dir.join("metrics.json").display());
            super::report(dir)?;
            Ok(m)
        },
    )
}

fn print_results(m: &serde_json::Value) {
    let list = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default()
    };
    let ours = list(&m["eigenvalues"]);
    let trained = list(&m["trained_network_eigenvalues"]);
    let exact = list(&m["exact"]["eigenvalues"]);
    let errors = list(&m["exact"]["relative_errors"]);
    let r2 = list(&m["exact"]["subspace"]["r2"]);
    let linear = list(&m["linear_eigenvalues"]);
    let nodes = list(&m["exact"]["participation"]);
    println!(
        "{:>3}  {:>12}  {:>12}  {:>12}  {:>9}  {:>7}  {:>7}  {:>12}",
        "k", "λ (ours)", "trained net", "exact", "rel. err", "R²", "nodes", "linear"
    );
    for k in 0..ours.len() {
        let cell = |v: &[f64], p: usize| v.get(k).map_or("—".to_string(), |x| format!("{x:.p$}"));
        println!(
            "{k:>3}  {:>12}  {:>12}  {:>12}  {:>8}%  {:>7}  {:>7}  {:>12}",
            cell(&ours, 6),
            cell(&trained, 6),
            cell(&exact, 6),
            errors
                .get(k)
                .map_or("—".to_string(), |e| format!("{:.3}", 100.0 * e)),
            cell(&r2, 4),
            cell(&nodes, 0),
            cell(&linear, 6)
        );
    }
    let n = m["nodes"].as_u64().unwrap_or(0) as usize;
    for (k, p) in graph::exact::node_level_misses(&r2, &nodes, n) {
        println!(
            "exact mode {k} lives on ≈ {p:.0} of {n} nodes (a weakly attached group, e.g. an outlier): a node-level mode, which no smooth function of the features follows; the learned functions go on to the next smooth one (docs/results/graph.md)"
        );
    }
    let t = &m["test_sequence"];
    if t.is_object() {
        let show = |v: &serde_json::Value| {
            list(v)
                .iter()
                .map(|x| format!("{x:.6}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "held-out series ({} rows): λ {}  (sum {:.6})",
            t["rows"],
            show(&t["eigenvalues"]),
            t["sum"].as_f64().unwrap_or(f64::NAN)
        );
        if t["linear_eigenvalues"].is_array() {
            println!(
                "  linear SFA fitted on the training series: λ {}  (sum {:.6})",
                show(&t["linear_eigenvalues"]),
                t["linear_sum"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    println!(
        "read-out: {}; {} steps ({}) on {}",
        m["readout"].as_str().unwrap_or("?"),
        m["steps"],
        super::rate(m, 1),
        m["adapter"].as_str().unwrap_or("?")
    );
}
