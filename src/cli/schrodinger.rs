//! `spin schrodinger` and `spin hydrogen`: the configuration of a Schrödinger run from its
//! flags (a new run on a preset, or a resumed one), the run, and its table of eigenvalues.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::options::{note, set, NetworkArgs, OptimiserArgs, OutputArgs, TrainingArgs};
use super::Cli;
use spectral_inference::experiments::schrodinger::{
    self, ExchangeKind, LaplacianKind, Preset, SamplerKind, SchrodingerConfig,
};

/// Settings of a Schrödinger run; unset ones come from the preset.
#[derive(clap::Args, Debug, Default)]
#[command(allow_negative_numbers = true)]
#[command(mut_arg("steps", |a| note(a, "[default: 20000; spin hydrogen: 60000; --preset reference: 1000000]")))]
#[command(mut_arg("time_limit", |a| note(a, "Given without --steps, the time limit alone ends the run (the preset's step count no longer applies) [default: no limit; spin hydrogen: 1800]")))]
#[command(mut_arg("beta", |a| note(a, "[default: 1; --preset reference: 0.01]")))]
#[command(mut_arg("shift", |a| note(a, "[default: 0.05; --preset reference: 0]")))]
#[command(mut_arg("tail", |a| note(a, "[default: 0.1; --preset reference and --exchange: 0]")))]
#[command(mut_arg("whiten_readout", |a| note(a, "[default: 0.1; --preset reference: 0]")))]
#[command(mut_arg("seed", |a| note(a, "[default: 0]")))]
#[command(mut_arg("optimizer", |a| note(a, "[default: adam; --preset reference: rmsprop]")))]
#[command(mut_arg("lr", |a| note(a, "(reached after a linear warm-up of --warmup steps) [default: 3e-3; --preset reference: 1e-5]")))]
#[command(mut_arg("schedule", |a| note(a, "[default: cosine; --preset reference: constant]")))]
#[command(mut_arg("clip_grad", |a| note(a, "[default: 2; --preset reference: 0]")))]
#[command(mut_arg("guard", |a| note(a, "[default: 0, off: 0.1 rescued 2D hydrogen's reproducible failure but also acted on swings that recover by themselves, and its halved rate cost short runs more; docs/results/robustness.md]")))]
#[command(mut_arg("out", |a| note(a, "[default: runs/schrodinger; spin hydrogen: runs/hydrogen]")))]
#[command(mut_arg("checkpoint_every", |a| note(a, "[default: 1000]")))]
#[command(mut_arg("resume", |a| note(a, "(its configuration; --steps, --time-limit, --beta, the --eval-* settings, --readout-refit, --plot-extent, --heldout-every and --checkpoint-every may be changed) [default: a new run]")))]
#[command(mut_arg("hidden", |a| note(a, "[default: 64,64,64; with the read-out refit the last one grows to 7 units per eigenfunction, a multiple of 32 from 64 to 224: 128 for N = 16]")))]
#[command(mut_arg("blocks", |a| note(a, "[default: 0]")))]
pub struct SchrodingerArgs {
    /// Dimension of each particle; the configuration space has --particles × this, at most 3
    /// for one particle and 9 for several [default: 2; --potential soft-coulomb: 1, helium: 3].
    #[arg(long)]
    dim: Option<usize>,
    /// Particles P sharing the configuration space; an expression sees particle i's position
    /// as `pi` (f32 in 1D, vecd<f32>) besides the whole configuration `x`, and each learned
    /// eigenfunction's exchange parity under swapping particles 0 and 1 is reported; above 3
    /// coordinates the sampler must be `importance` (one radial mixture per particle)
    /// [default: 1; --potential soft-coulomb and helium: 2].
    #[arg(long)]
    particles: Option<usize>,
    /// Build the network in one exchange sector: `symmetric` or `antisymmetric` outputs
    /// (f(x) ± f(Px))/2 under swapping particles 0 and 1 (for two electrons: spin singlets or
    /// triplets), or `none` (both sectors, each state labelled by its measured parity); needs
    /// --particles 2 or more and β = 1 [default: none].
    #[arg(long)]
    exchange: Option<ExchangeKind>,
    /// `hydrogen`, `harmonic`, `soft-coulomb` (two particles on a line, the 1D helium model:
    /// V = −Z/√(x₀²+1) − Z/√(x₁²+1) + 1/√((x₀−x₁)²+1), Z = 2, kinetic ½, box 20, levels against
    /// a grid), `helium` (two electrons in 3D: −Z/|p0| − Z/|p1| + 1/|p0 − p1|, Z = 2, kinetic
    /// ½, box 10, the importance sampler, the exact Laplacian with the distance features,
    /// Drake's levels) or a WGSL expression in `x` (vecD<f32>,
    /// f32 in 1D, array<f32, D> above 4) and the particles `p0`, `p1`…, e.g. `dot(x, x)`
    /// [default: hydrogen].
    #[arg(long, allow_hyphen_values = true)]
    potential: Option<String>,
    /// Nuclear charge Z of the hydrogen potential −Z/‖x‖ [default: 1].
    #[arg(long)]
    charge: Option<f64>,
    /// Kinetic coefficient c in H = −c∇² + V [default: 1].
    #[arg(long)]
    kinetic: Option<f64>,
    /// Half-width D of the box [−D, D]^d [default: 50; for --potential hydrogen twice the
    /// turning radius Z/|E_N| of the highest level learned if that is more: 98 for N = 16 in 2D].
    #[arg(long = "box")]
    half_width: Option<f64>,
    /// Multiply the network by the box envelope: true or false [default: true].
    #[arg(long)]
    envelope: Option<bool>,
    /// Laplacian: fd (finite differences, see --eps), exact (forward mode) or weak (⟨∇u, c∇u⟩)
    /// [default: weak; --preset reference and --potential helium: exact].
    #[arg(long)]
    laplacian: Option<LaplacianKind>,
    /// Finite-difference step ε [default: 0.1].
    #[arg(long)]
    eps: Option<f64>,
    /// Sampler: uniform (the reference), importance (fixed, around the origin) or adaptive (the
    /// importance proposal mixed with a grid refitted to the learned eigenfunctions; for
    /// several particles one grid per particle, fitted to their one-particle density)
    /// [default: adaptive; above 3 coordinates importance; --preset reference: uniform].
    #[arg(long)]
    sampler: Option<SamplerKind>,
    /// Number of eigenfunctions N [default: 9].
    #[arg(long)]
    neig: Option<usize>,
    /// Samples per step [default: 128; above 3 coordinates (several particles) 1024].
    #[arg(long)]
    batch: Option<usize>,
    /// Linear learning-rate warm-up over this many first steps [default: 500; --preset
    /// reference: 0].
    #[arg(long)]
    warmup: Option<u64>,
    #[command(flatten)]
    training: TrainingArgs,
    #[command(flatten)]
    optimiser: OptimiserArgs,
    #[command(flatten)]
    network: NetworkArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Points in the final evaluation's first pass [default: 1048576].
    #[arg(long)]
    eval_samples: Option<usize>,
    /// Grow the evaluation until every eigenvalue's standard error is below this fraction of
    /// its value (0: one pass) [default: 0.0005].
    #[arg(long)]
    eval_target: Option<f64>,
    /// The evaluation's largest sample [default: 4194304].
    #[arg(long)]
    eval_max_samples: Option<usize>,
    /// The evaluation's Laplacian: fd, exact or weak (the same integral, other estimators)
    /// [default: exact, whose variance vanishes at an eigenfunction; the training's in 1D with
    /// --radial true].
    #[arg(long)]
    eval_laplacian: Option<LaplacianKind>,
    /// Half-width of the eigenfunction plots [default: D/2, at least 25 and at most D].
    #[arg(long)]
    plot_extent: Option<f64>,
    /// Input length scale: the first layer's initial weights are divided by it; 0: min(1, D/4),
    /// or D/50 above D = 50 [default: 0, i.e. from the box (1 for spin hydrogen's box of 50)].
    #[arg(long)]
    input_scale: Option<f64>,
    /// Give the network the radial feature ‖x‖ as an extra input: true or false [default: true
    /// for --potential hydrogen, false otherwise; --preset reference: false].
    #[arg(long)]
    radial: Option<bool>,
    /// Give the network every particle's distance from the origin |pᵢ| and every pair's
    /// distance |pᵢ − pⱼ| as extra inputs (the nuclear and electron–electron cusps): true or
    /// false; two or more particles in 2D or 3D [default: false; --potential helium: true].
    #[arg(long)]
    particle_features: Option<bool>,
    /// One network per eigenfunction, each with the --hidden widths: true or false
    /// [default: false].
    #[arg(long)]
    separate: Option<bool>,
    /// Length scales of the importance proposal's radial components, e.g. 0.5,1.5,3,6,12
    /// [default: the box half-width D × 0.01,0.03,0.06,0.12,0.24].
    #[arg(long, value_delimiter = ',')]
    proposal_scales: Option<Vec<f64>>,
    /// Refit the adaptive proposal to the current eigenfunctions every this many steps
    /// [default: 250].
    #[arg(long)]
    adapt_every: Option<u64>,
    /// Evaluate the held-out curve (Ritz values of the evaluation's estimator on a fixed sample
    /// of 4096 points) every this many steps; 0: none [default: 1000].
    #[arg(long)]
    heldout_every: Option<u64>,
    /// Rotate the read-out to the Ritz vectors of the outputs' own span every this many steps
    /// (estimated on 16 384 fresh points): the same span and loss, but Σ = I and the features in
    /// ascending order, which undoes a drifting scale and swapped states; β = 1 before the tail
    /// only; 0: never [default: 0].
    #[arg(long, value_name = "K")]
    rotate_every: Option<u64>,
    /// After training, refit the output layer by Rayleigh–Ritz on the span of the last hidden
    /// layer's units (fitted on --eval-samples points of its own; both networks are evaluated
    /// and reported): true or false [default: true; above 3 coordinates (several particles)
    /// and --preset reference: false].
    #[arg(long)]
    readout_refit: Option<bool>,
}

/// `spin hydrogen`'s preset, and every Schrödinger flag.
#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct HydrogenArgs {
    /// best (spin schrodinger's defaults — weak form, radial input feature, adaptive proposal,
    /// Adam 3e-3 with warm-up and cosine schedule, β 1 — for 60 000 steps or 30 minutes, then the
    /// read-out refit) or reference (the reference code's flag defaults: exact Laplacian,
    /// uniform sampling, RMSProp 1e-5, β 0.01, 10⁶ steps, no refit).
    #[arg(long, default_value = "best")]
    pub preset: Preset,
    #[command(flatten)]
    pub run: SchrodingerArgs,
}

/// The configuration of a new run: `cfg` (a preset) with the flags given.
pub fn apply(cfg: &mut SchrodingerConfig, a: &SchrodingerArgs) -> Result<()> {
    if let Some(p) = &a.potential {
        cfg.set_potential(p);
    }
    // --dim is each particle's: the configuration space has P × d coordinates.
    cfg.set_particles(a.particles, a.dim)?;
    // (set_particles applies the defaults above 3 coordinates; the flags below override them.)
    set!(cfg.exchange, a.exchange);
    set!(cfg.charge, a.charge);
    set!(cfg.kinetic, a.kinetic);
    set!(cfg.half_width, a.half_width);
    set!(cfg.envelope, a.envelope);
    set!(cfg.laplacian, a.laplacian);
    set!(cfg.eps, a.eps);
    set!(cfg.sampler, a.sampler);
    if let Some(h) = &a.network.hidden {
        if h.0.is_empty() {
            bail!("--hidden none: a Schrödinger network needs at least one hidden layer");
        }
        cfg.hidden = h.0.clone();
    }
    set!(cfg.blocks, a.network.blocks);
    set!(cfg.neig, a.neig);
    set!(cfg.train.batch, a.batch);
    set!(cfg.train.steps, a.training.steps);
    set!(cfg.train.beta, a.training.beta);
    set!(cfg.train.shift, a.training.shift);
    set!(cfg.train.gauge, a.training.gauge);
    set!(cfg.train.whiten_readout, a.training.whiten_readout);
    set!(cfg.train.tail.fraction, a.training.tail);
    set!(cfg.train.tail.beta, a.training.tail_beta);
    // The symmetrised network has no Σ-Jacobian path, so no tail unless asked (then an error).
    if cfg.exchange != ExchangeKind::None && a.training.tail.is_none() {
        cfg.train.tail.fraction = 0.0;
    }
    set!(cfg.train.objective, a.training.objective);
    set!(cfg.train.seed, a.training.seed);
    a.optimiser.apply(&mut cfg.train.optimizer);
    set!(cfg.train.optimizer.warmup, a.warmup);
    set!(cfg.checkpoint_every, a.output.checkpoint_every);
    set!(cfg.eval_samples, a.eval_samples);
    set!(cfg.plot_extent, a.plot_extent);
    set!(cfg.input_scale, a.input_scale);
    set!(cfg.radial, a.radial);
    set!(cfg.particle_features, a.particle_features);
    set!(cfg.separate, a.separate);
    set!(cfg.proposal_scales, a.proposal_scales);
    set!(cfg.adapt_every, a.adapt_every);
    set!(cfg.eval_target, a.eval_target);
    set!(cfg.eval_max_samples, a.eval_max_samples);
    set!(cfg.readout_refit, a.readout_refit);
    set!(cfg.heldout_every, a.heldout_every);
    set!(cfg.rotate_every, a.rotate_every);
    if a.eval_laplacian.is_some() {
        cfg.eval_laplacian = a.eval_laplacian;
    }
    a.training
        .apply_time_limit(&mut cfg.time_limit, &mut cfg.train.steps);
    // Settings that follow from the others unless given.
    if a.network.hidden.is_none() {
        cfg.widen_for_refit();
    }
    if a.half_width.is_none() {
        if let Some(d) = cfg.coulomb_box() {
            cfg.half_width = d;
        }
    }
    if a.plot_extent.is_none() {
        cfg.plot_extent = (cfg.half_width / 2.0).max(25.0).min(cfg.half_width);
    }
    Ok(())
}

/// The configuration of a resumed run: the checkpoint's, with the settings that may change.
fn resumed(
    dir: &std::path::Path,
    run: &serde_json::Value,
    args: &SchrodingerArgs,
) -> Result<SchrodingerConfig> {
    let mut cfg: SchrodingerConfig =
        serde_json::from_value(run["config"].clone()).with_context(|| {
            format!(
                "{}: the checkpoint holds no Schrödinger configuration",
                dir.display()
            )
        })?;
    set!(cfg.train.steps, args.training.steps);
    args.training
        .apply_time_limit(&mut cfg.time_limit, &mut cfg.train.steps);
    // β may change: a checkpoint written at β = 1 holds no J̄, which then starts from the first
    // step's Ĵ; one with J̄ resumed at β = 1 drops it (Trainer::restore).
    set!(cfg.train.beta, args.training.beta);
    // Settings that do not change the training trajectory.
    set!(cfg.eval_samples, args.eval_samples);
    set!(cfg.eval_target, args.eval_target);
    set!(cfg.eval_max_samples, args.eval_max_samples);
    if args.eval_laplacian.is_some() {
        cfg.eval_laplacian = args.eval_laplacian;
    }
    set!(cfg.readout_refit, args.readout_refit);
    set!(cfg.plot_extent, args.plot_extent);
    set!(cfg.checkpoint_every, args.output.checkpoint_every);
    set!(cfg.heldout_every, args.heldout_every);
    Ok(cfg)
}

/// The global batch the command line will train with (a resumed run's own), `None` when the
/// configuration does not resolve (the run itself then reports why).
pub fn planned_batch(base: SchrodingerConfig, args: &SchrodingerArgs) -> Option<usize> {
    plan(base, args, "").ok().map(|(cfg, _, _)| cfg.train.batch)
}

/// The run's configuration, its folder and, when resuming, its saved state.
fn plan(
    base: SchrodingerConfig,
    args: &SchrodingerArgs,
    default_out: &str,
) -> Result<(
    SchrodingerConfig,
    PathBuf,
    Option<spectral_inference::spin::checkpoint::TrainerState>,
)> {
    Ok(match &args.output.resume {
        Some(dir) => {
            let (state, run) = spectral_inference::spin::checkpoint::load(dir)?;
            let cfg = resumed(dir, &run, args)?;
            (
                cfg,
                args.output.out.clone().unwrap_or_else(|| dir.clone()),
                Some(state),
            )
        }
        None => {
            let mut cfg = base;
            apply(&mut cfg, args)?;
            let out = args
                .output
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(default_out));
            (cfg, out, None)
        }
    })
}

/// Runs `spin schrodinger` (`base` = the generic defaults) or `spin hydrogen` (a preset).
pub fn run(
    cli: &Cli,
    base: SchrodingerConfig,
    args: &SchrodingerArgs,
    default_out: &str,
) -> Result<()> {
    let (cfg, out, state) = plan(base, args, default_out)?;
    cfg.validate()?;
    let ctx = super::context(cli)?;
    eprintln!("adapter: {}", ctx.adapter().name);
    super::seeds::run(
        args.training.seeds,
        &cfg,
        |c| &mut c.train.seed,
        super::seeds::SCHRODINGER,
        &out,
        state,
        |c, dir, state| run_one(&ctx, c, dir, state),
    )
}

/// One run of `cfg` into `out` (from `state` when resuming): the run, its table and its report.
fn run_one(
    ctx: &std::sync::Arc<spectral_inference::gpu::GpuContext>,
    cfg: &SchrodingerConfig,
    out: &std::path::Path,
    state: Option<spectral_inference::spin::checkpoint::TrainerState>,
) -> Result<serde_json::Value> {
    eprintln!(
        "{} in {}D{}, box {}, N = {}, MLP {:?}, {:?} Laplacian, {:?} sampling, batch {}, {:?} lr {}, β {}{}",
        cfg.potential,
        cfg.dim,
        if cfg.particles > 1 {
            format!(
                " ({} particles in {}D{})",
                cfg.particles,
                cfg.particle_dim(),
                match cfg.exchange {
                    ExchangeKind::None => "",
                    ExchangeKind::Symmetric => ", exchange-symmetric network",
                    ExchangeKind::Antisymmetric => ", exchange-antisymmetric network",
                }
            )
        } else {
            String::new()
        },
        cfg.half_width,
        cfg.neig,
        cfg.hidden,
        cfg.laplacian,
        cfg.sampler,
        cfg.train.batch,
        cfg.train.optimizer.kind,
        cfg.train.optimizer.lr,
        cfg.train.beta,
        state
            .as_ref()
            .map(|s| format!(", resuming at step {}", s.step))
            .unwrap_or_default()
    );
    let m = schrodinger::run(ctx.clone(), cfg, out, state)?;
    print_results(&m, out)?;
    super::report(out)?;
    Ok(m)
}

/// The table of learned eigenvalues (with exact ones and errors where known) and the evaluation.
fn print_results(m: &serde_json::Value, out: &std::path::Path) -> Result<()> {
    let learned: Vec<f64> = serde_json::from_value(m["eigenvalues"].clone())?;
    let exact: Option<Vec<f64>> = serde_json::from_value(m["exact_eigenvalues"].clone()).ok();
    let std_err: Vec<f64> =
        serde_json::from_value(m["eigenvalue_std_errors"].clone()).unwrap_or_default();
    let parity: Vec<f64> = serde_json::from_value(m["exchange_parity"].clone()).unwrap_or_default();
    println!(
        "{:>4}  {:>12}  {:>10}  {:>12}  {:>10}{}",
        "k",
        "learned",
        "± (MC)",
        "exact",
        "rel. error",
        if parity.is_empty() {
            ""
        } else {
            "  exchange parity"
        }
    );
    for (k, l) in learned.iter().enumerate() {
        let se = std_err
            .get(k)
            .map(|v| format!("{v:.6}"))
            .unwrap_or_default();
        let p = parity
            .get(k)
            .map(|p| {
                format!(
                    "  {p:>+7.3} {}",
                    spectral_inference::experiments::schrodinger::parity_label(*p)
                )
            })
            .unwrap_or_default();
        match exact.as_ref().and_then(|e| e.get(k)) {
            Some(e) => println!(
                "{k:>4}  {l:>12.6}  {se:>10}  {e:>12.6}  {:>9.3}%{p}",
                100.0 * (l - e).abs() / e.abs()
            ),
            None => println!("{k:>4}  {l:>12.6}  {se:>10}  {:>12}  {:>10}{p}", "", ""),
        }
    }
    if let Some(mre) = m["mean_relative_error"].as_f64() {
        println!("mean relative error {:.3}%", 100.0 * mre);
    }
    if let Some(low) = m["below_exact_by_2_std_errors"].as_array() {
        if !low.is_empty() {
            println!(
                "warning: eigenvalue(s) {low:?} lie more than 2 standard errors below the exact \
                 value (a variational estimate cannot): Monte Carlo error; raise --eval-samples"
            );
        }
    }
    match m["eval_max_relative_std_error"].as_f64() {
        Some(se) if se.is_finite() => println!(
            "evaluation: {} points, largest standard error {:.4}% of its eigenvalue",
            m["eval_samples"],
            100.0 * se
        ),
        _ => println!(
            "evaluation: {} points (one chunk: no standard errors; raise --eval-samples)",
            m["eval_samples"]
        ),
    }
    println!(
        "{} steps in {:.1} s ({}); wrote {}",
        m["steps"],
        m["wall_seconds"].as_f64().unwrap_or(0.0),
        super::rate(m, 1),
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use super::*;
    use spectral_inference::experiments::schrodinger::UNTIL_TIME_LIMIT;

    /// Parses `argv` (`spin hydrogen …` or `spin schrodinger …`) into the configuration of a
    /// new run.
    fn new_run_config(argv: &[&str]) -> SchrodingerConfig {
        use clap::Parser;
        let cli = Cli::try_parse_from(argv).unwrap();
        let (mut cfg, a) = match &cli.command {
            Command::Hydrogen(h) => (SchrodingerConfig::hydrogen(h.preset), &h.run),
            Command::Schrodinger(a) => (SchrodingerConfig::generic(), a),
            other => panic!("{other:?}"),
        };
        apply(&mut cfg, a).unwrap();
        cfg
    }

    /// `new_run_config` of a command line written as one string.
    fn run_config(line: &str) -> SchrodingerConfig {
        new_run_config(&line.split_whitespace().collect::<Vec<_>>())
    }

    /// --dim is each particle's: the configuration space has --particles × --dim coordinates;
    /// the 1D two-particle model brings its own particles, dimension, charge, kinetic
    /// coefficient and box, each of which a flag still overrides.
    #[test]
    fn particles_share_the_configuration_space() {
        let c = run_config("spin schrodinger --particles 3 --dim 1");
        assert_eq!((c.dim, c.particles, c.particle_dim()), (3, 3, 1));
        assert!(c.validate().is_ok());
        let c = run_config("spin schrodinger --dim 3");
        assert_eq!((c.dim, c.particles, c.particle_dim()), (3, 1, 3));
        let c = run_config("spin schrodinger --potential soft-coulomb");
        assert_eq!((c.dim, c.particles, c.particle_dim()), (2, 2, 1));
        assert_eq!((c.charge, c.kinetic, c.half_width), (2.0, 0.5, 20.0));
        assert_eq!(c.train.batch, 128);
        assert!(c.readout_refit);
        assert!(c.validate().is_ok());
        let c = run_config("spin schrodinger --potential soft-coulomb --charge 1 --box 30");
        assert_eq!((c.charge, c.half_width), (1.0, 30.0));
        // The 1D model is two particles on a line, nothing else.
        let c = run_config("spin schrodinger --potential soft-coulomb --dim 2");
        assert!(c.validate().is_err());
        let argv = ["spin", "schrodinger", "--particles", "0"];
        let cli = <Cli as clap::Parser>::try_parse_from(argv).unwrap();
        let Command::Schrodinger(a) = &cli.command else {
            unreachable!()
        };
        assert!(apply(&mut SchrodingerConfig::generic(), a).is_err());
    }

    /// Two particles in 2D are a 4D configuration space: above 3D the sampler defaults to the
    /// fixed per-particle proposal, and the adaptive one is a grid per particle (up to 3D each);
    /// two particles in 5D are past 9.
    #[test]
    fn above_three_coordinates_the_proposal_changes() {
        let c = run_config("spin schrodinger --particles 2 --dim 2");
        assert_eq!((c.dim, c.sampler), (4, SamplerKind::Importance));
        assert!(c.validate().is_ok());
        let c = run_config("spin schrodinger --particles 2 --dim 2 --sampler adaptive");
        assert!(c.validate().is_ok());
        let c = run_config("spin schrodinger --particles 2 --dim 4 --sampler adaptive");
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("--sampler importance"), "{err}");
        let c = run_config("spin schrodinger --particles 2 --dim 5 --sampler importance");
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("10-dimensional configuration space"), "{err}");
    }

    /// Helium: two particles in 3D, a batch of 1024 (above 3D), the exact Laplacian and the
    /// distance features, no read-out refit — each unless its flag is given.
    #[test]
    fn helium_brings_its_defaults_and_flags_override_them() {
        let c = run_config("spin schrodinger --potential helium");
        assert_eq!((c.dim, c.particles, c.half_width), (6, 2, 10.0));
        assert_eq!(c.train.batch, 1024);
        assert_eq!(c.laplacian, LaplacianKind::Exact);
        assert!(c.particle_features);
        assert!(!c.readout_refit);
        assert!(c.validate().is_ok());
        let helium =
            |flags: &str| run_config(&format!("spin schrodinger --potential helium {flags}"));
        assert_eq!(helium("--laplacian weak").laplacian, LaplacianKind::Weak);
        assert!(!helium("--particle-features false").particle_features);
        assert_eq!(helium("--batch 256").train.batch, 256);
        assert!(helium("--readout-refit true").readout_refit);
    }

    /// --exchange builds the symmetrised network for two or more particles at β = 1, and the
    /// reference levels are the sector's own.
    #[test]
    fn exchange_needs_particles_and_beta_one() {
        let base = [
            "spin",
            "schrodinger",
            "--potential",
            "helium",
            "--neig",
            "4",
        ];
        let c = new_run_config(&[&base[..], &["--exchange", "antisymmetric"]].concat());
        assert_eq!(c.exchange, ExchangeKind::Antisymmetric);
        assert!(c.validate().is_ok());
        let (levels, parities) = c.exact_levels().unwrap();
        assert_eq!(levels, [-2.175229, -2.133164, -2.133164, -2.133164]);
        assert!(parities.iter().all(|&p| p == -1.0));
        let c = new_run_config(&[&base[..], &["--exchange", "symmetric"]].concat());
        assert_eq!(c.exact_eigenvalues().unwrap()[..2], [-2.903724, -2.145974]);
        // Five singlets and four triplets are known: a sixth singlet has no reference.
        let six = [
            "spin",
            "schrodinger",
            "--potential",
            "helium",
            "--neig",
            "6",
        ];
        let c = new_run_config(&[&six[..], &["--exchange", "symmetric"]].concat());
        assert!(c.exact_eigenvalues().is_none());
        let argv = [&base[..], &["--exchange", "symmetric", "--beta", "0.5"]].concat();
        let err = new_run_config(&argv).validate().unwrap_err().to_string();
        assert!(err.contains("β = 1"), "{err}");
        let one = ["spin", "schrodinger", "--exchange", "antisymmetric"];
        let err = new_run_config(&one).validate().unwrap_err().to_string();
        assert!(err.contains("--particles 2"), "{err}");
        let bad = ["spin", "schrodinger", "--exchange", "odd"];
        assert!(<Cli as clap::Parser>::try_parse_from(bad).is_err());
    }

    /// The last hidden layer grows with N for the read-out refit unless --hidden is given.
    #[test]
    fn the_last_hidden_layer_follows_n_unless_given() {
        let hidden = |argv: &[&str]| new_run_config(argv).hidden;
        assert_eq!(hidden(&["spin", "hydrogen"]), [64, 64, 64]);
        assert_eq!(hidden(&["spin", "hydrogen", "--neig", "16"]), [64, 64, 128]);
        let given = ["spin", "hydrogen", "--neig", "16", "--hidden", "64,64,64"];
        assert_eq!(hidden(&given), [64, 64, 64]);
        let no_refit = [
            "spin",
            "hydrogen",
            "--neig",
            "16",
            "--readout-refit",
            "false",
        ];
        assert_eq!(hidden(&no_refit), [64, 64, 64]);
        let reference = ["spin", "hydrogen", "--neig", "16", "--preset", "reference"];
        assert_eq!(hidden(&reference), [64, 64, 64]);
        let three_d = ["spin", "schrodinger", "--dim", "3", "--neig", "14"];
        assert_eq!(hidden(&three_d), [64, 64, 128]);
    }

    /// `--time-limit` without `--steps` lets the time limit alone end the run.
    #[test]
    fn a_time_limit_alone_lifts_the_step_count() {
        let steps = |argv: &[&str]| new_run_config(argv).train.steps;
        assert_eq!(steps(&["spin", "hydrogen"]), 60_000);
        assert_eq!(
            steps(&["spin", "hydrogen", "--time-limit", "3600"]),
            UNTIL_TIME_LIMIT
        );
        assert_eq!(
            steps(&["spin", "hydrogen", "--time-limit", "60", "--steps", "100"]),
            100
        );
        assert_eq!(steps(&["spin", "schrodinger"]), 20_000);
    }

    /// The box follows N for the Coulomb potential unless given, and the plots follow the box.
    #[test]
    fn the_box_and_the_plots_follow_n_unless_given() {
        let config = |argv: &[&str]| {
            let cfg = new_run_config(argv);
            (cfg.half_width, cfg.plot_extent)
        };
        assert_eq!(config(&["spin", "hydrogen"]), (50.0, 25.0));
        assert_eq!(config(&["spin", "hydrogen", "--neig", "16"]), (98.0, 49.0));
        assert_eq!(
            config(&["spin", "hydrogen", "--neig", "16", "--box", "60"]),
            (60.0, 30.0)
        );
        assert_eq!(
            config(&["spin", "hydrogen", "--neig", "16", "--plot-extent", "40"]),
            (98.0, 40.0)
        );
        assert_eq!(
            config(&["spin", "schrodinger", "--dim", "3", "--neig", "14"]),
            (72.0, 36.0)
        );
        let osc = [
            "spin",
            "schrodinger",
            "--potential",
            "dot(x, x)",
            "--box",
            "6",
        ];
        assert_eq!(config(&osc), (6.0, 6.0));
        let osc = [
            "spin",
            "schrodinger",
            "--potential",
            "dot(x, x)",
            "--neig",
            "16",
        ];
        assert_eq!(config(&osc), (50.0, 25.0));
    }

    /// Negative numbers reach the range checks instead of being taken for flags.
    #[test]
    fn negative_numbers_parse_as_values() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["spin", "schrodinger", "--box", "-3"]).unwrap();
        match cli.command {
            Command::Schrodinger(a) => assert_eq!(a.half_width, Some(-3.0)),
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["spin", "hydrogen", "--beta", "-0.5"]).is_ok());
        assert!(Cli::try_parse_from(["spin", "grid", "--box", "-1"]).is_ok());
    }
}
