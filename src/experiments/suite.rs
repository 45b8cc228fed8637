//! The accuracy suite: `spin schrodinger`'s defaults on potentials with closed-form spectra or a
//! resolved grid baseline, one run per case, one table.
//!
//! Every case runs with the defaults of [`SchrodingerConfig::generic`] and nothing else but the
//! problem itself (dimension, potential, box, N) and the time budget.

use std::sync::Arc;

use crate::error::{Result, SpinError};
use crate::gpu::GpuContext;

use super::grid::{self, GridConfig};
use super::schrodinger::{self, SchrodingerConfig};

/// Where a case's reference eigenvalues come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Reference {
    /// A closed form.
    Exact(Vec<f64>),
    /// The finite-difference grid at n and 2n + 1 points per axis, Richardson-extrapolated
    /// (the grid's error is O(h²), so (4 E_{h/2} − E_h)/3 removes its leading term).
    Grid {
        /// The coarser grid's interior points per axis.
        n: usize,
    },
}

/// One problem of the suite.
#[derive(Clone, Debug)]
pub struct Case {
    /// Short name.
    pub name: &'static str,
    /// Dimension.
    pub dim: usize,
    /// `hydrogen`, `harmonic` or a WGSL expression in `x`.
    pub potential: &'static str,
    /// Box half-width D.
    pub half_width: f64,
    /// Eigenfunctions N.
    pub neig: usize,
    /// The reference.
    pub reference: Reference,
}

/// The suite: oscillators in 1–3D (isotropic and anisotropic, as expressions), hydrogen in 2D
/// and 3D, a particle in a box, a Pöschl–Teller well (closed form) and double wells in 1D and
/// 2D (grid).
pub fn cases() -> Vec<Case> {
    let box_levels = |levels: &[f64]| {
        let q = std::f64::consts::PI * std::f64::consts::PI / 4.0;
        levels.iter().map(|l| q * l).collect::<Vec<_>>()
    };
    vec![
        Case {
            name: "oscillator-1d",
            dim: 1,
            potential: "x * x",
            half_width: 6.0,
            neig: 4,
            reference: Reference::Exact(vec![1.0, 3.0, 5.0, 7.0]),
        },
        Case {
            name: "oscillator-2d-aniso",
            dim: 2,
            potential: "x.x * x.x + 4.0 * x.y * x.y",
            half_width: 6.0,
            neig: 4,
            reference: Reference::Exact(vec![3.0, 5.0, 7.0, 7.0]),
        },
        Case {
            name: "oscillator-3d",
            dim: 3,
            potential: "dot(x, x)",
            half_width: 6.0,
            neig: 4,
            reference: Reference::Exact(vec![3.0, 5.0, 5.0, 5.0]),
        },
        Case {
            name: "hydrogen-2d",
            dim: 2,
            potential: "hydrogen",
            half_width: 50.0,
            neig: 9,
            reference: Reference::Exact(
                schrodinger::hydrogen_eigenvalues(2, 1.0, 1.0, 9).unwrap_or_default(),
            ),
        },
        Case {
            name: "hydrogen-3d",
            dim: 3,
            potential: "hydrogen",
            half_width: 40.0,
            neig: 5,
            reference: Reference::Exact(
                schrodinger::hydrogen_eigenvalues(3, 1.0, 1.0, 5).unwrap_or_default(),
            ),
        },
        Case {
            name: "box-2d",
            dim: 2,
            potential: "0.0",
            half_width: 1.0,
            neig: 4,
            reference: Reference::Exact(box_levels(&[2.0, 5.0, 5.0, 8.0])),
        },
        Case {
            name: "poschl-teller-1d",
            dim: 1,
            potential: "-6.0 / (cosh(x) * cosh(x))",
            half_width: 10.0,
            neig: 2,
            reference: Reference::Exact(vec![-4.0, -1.0]),
        },
        Case {
            name: "double-well-1d",
            dim: 1,
            potential: "4.0 * (x * x - 1.0) * (x * x - 1.0)",
            half_width: 4.0,
            neig: 4,
            reference: Reference::Grid { n: 1000 },
        },
        Case {
            name: "double-well-2d",
            dim: 2,
            potential: "4.0 * (x.x * x.x - 1.0) * (x.x * x.x - 1.0) + x.y * x.y",
            half_width: 4.0,
            neig: 4,
            reference: Reference::Grid { n: 127 },
        },
    ]
}

/// The run configuration of a case: the defaults, the case's problem, the time budget.
pub fn config(case: &Case, seconds: f64, seed: u64) -> SchrodingerConfig {
    let mut c = SchrodingerConfig::generic();
    c.dim = case.dim;
    c.set_potential(case.potential);
    c.half_width = case.half_width;
    c.neig = case.neig;
    c.time_limit = Some(seconds);
    c.train.seed = seed;
    c.plot_extent = case.half_width.min(c.plot_extent);
    c
}

/// The case's reference eigenvalues (ascending) and how they were obtained.
pub fn reference(case: &Case, ctx: &Arc<GpuContext>) -> Result<(Vec<f64>, String)> {
    match &case.reference {
        Reference::Exact(e) => Ok((e.clone(), "closed form".into())),
        Reference::Grid { n } => {
            let cfg = config(case, 1.0, 0);
            let v = cfg.potential_field(ctx)?;
            let solve = |n: usize| {
                grid::solve(
                    &GridConfig {
                        dim: case.dim,
                        n,
                        half_width: case.half_width,
                        kinetic: cfg.kinetic,
                        neig: case.neig,
                    },
                    &v,
                )
            };
            let coarse = solve(*n)?.eigenvalues;
            let fine = solve(2 * n + 1)?.eigenvalues;
            if coarse.len() < case.neig || fine.len() < case.neig {
                return Err(SpinError::Config(format!(
                    "{}: the grid gave fewer than {} eigenvalues",
                    case.name, case.neig
                )));
            }
            let e = coarse
                .iter()
                .zip(&fine)
                .map(|(c, f)| (4.0 * f - c) / 3.0)
                .collect();
            Ok((
                e,
                format!(
                    "grid {}^{d} and {}^{d}, extrapolated",
                    n,
                    2 * n + 1,
                    d = case.dim
                ),
            ))
        }
    }
}

/// One case's outcome.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// The run's seed.
    pub seed: u64,
    /// Dimension.
    pub dim: usize,
    /// Potential.
    pub potential: String,
    /// Box half-width.
    pub half_width: f64,
    /// Learned Ritz values, ascending.
    pub learned: Vec<f64>,
    /// Their Monte Carlo standard errors.
    pub std_errors: Vec<f64>,
    /// The reference.
    pub reference: Vec<f64>,
    /// Where the reference comes from.
    pub reference_kind: String,
    /// Relative errors per eigenvalue.
    pub relative_errors: Vec<f64>,
    /// Mean relative error.
    pub mean_relative_error: f64,
    /// Largest relative error.
    pub max_relative_error: f64,
    /// Mean relative error of the trained network before the read-out refit (on the same
    /// evaluation points), when the refit ran.
    pub trained_mean_relative_error: Option<f64>,
    /// Whether the refitted read-out was kept (`None`: no refit ran).
    pub refit_kept: Option<bool>,
    /// Training steps done.
    pub steps: u64,
    /// Training wall time, seconds.
    pub train_seconds: f64,
    /// Whole case wall time (training, evaluation, figures), seconds.
    pub wall_seconds: f64,
    /// Why training stopped early, if it did (the result is then the last good state's).
    pub stopped_by_error: Option<String>,
}

/// Runs one case with `cfg` (normally [`config`]'s) into `out/<name>` and compares it with its
/// reference.
pub fn run_case(
    ctx: &Arc<GpuContext>,
    case: &Case,
    cfg: &SchrodingerConfig,
    out: &std::path::Path,
) -> Result<CaseResult> {
    let start = std::time::Instant::now();
    let (reference, reference_kind) = reference(case, ctx)?;
    // A run stopped by a collapsed Σ̄ or a non-finite loss still evaluated its last good state
    // and wrote metrics.json: that is the case's (failed) result.
    let dir = out.join(case.name);
    let (m, failure) = match schrodinger::run(ctx.clone(), cfg, &dir, None) {
        Ok(m) => (m, None),
        Err(e @ (SpinError::Cholesky { .. } | SpinError::NonFinite { .. })) => {
            match std::fs::read_to_string(dir.join("metrics.json")) {
                Ok(text) => {
                    let m = serde_json::from_str(&text)
                        .map_err(|err| SpinError::Config(format!("{}: {err}", case.name)))?;
                    (m, Some(e.to_string()))
                }
                // The collapse also failed the evaluation (no metrics): a failed case with
                // no eigenvalues, and the suite goes on.
                Err(_) => (
                    serde_json::json!({ "eigenvalues": [] }),
                    Some(format!("{e} (and the evaluation of the last state failed)")),
                ),
            }
        }
        Err(e) => return Err(e),
    };
    let learned: Vec<f64> = serde_json::from_value(m["eigenvalues"].clone()).map_err(|e| {
        SpinError::Config(format!("{}: metrics without eigenvalues: {e}", case.name))
    })?;
    let std_errors: Vec<f64> =
        serde_json::from_value(m["eigenvalue_std_errors"].clone()).unwrap_or_default();
    let rel = schrodinger::relative_errors(&learned, &reference);
    let trained_mean_relative_error =
        serde_json::from_value::<Vec<f64>>(m["trained_network"]["eigenvalues"].clone())
            .ok()
            .map(|t| schrodinger::relative_errors(&t, &reference))
            .filter(|r| !r.is_empty())
            .map(|r| r.iter().sum::<f64>() / r.len() as f64);
    Ok(CaseResult {
        trained_mean_relative_error,
        refit_kept: m["readout_refit"]["kept"].as_bool(),
        name: case.name.into(),
        seed: cfg.train.seed,
        dim: case.dim,
        potential: case.potential.into(),
        half_width: case.half_width,
        learned,
        std_errors,
        reference,
        reference_kind,
        mean_relative_error: if rel.is_empty() {
            f64::NAN
        } else {
            rel.iter().sum::<f64>() / rel.len() as f64
        },
        max_relative_error: rel
            .iter()
            .cloned()
            .fold(if rel.is_empty() { f64::NAN } else { 0.0 }, f64::max),
        relative_errors: rel,
        steps: m["steps"].as_u64().unwrap_or(0),
        train_seconds: m["wall_seconds"].as_f64().unwrap_or(0.0),
        wall_seconds: start.elapsed().as_secs_f64(),
        stopped_by_error: failure,
    })
}

/// One case over its seeds: the median and the worst of the seeds' mean relative errors, the
/// worst of their largest errors and of the trained networks' mean errors.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OverSeeds {
    /// The case's name.
    pub name: String,
    /// The seeds run, in order.
    pub seeds: Vec<u64>,
    /// Median over the seeds of the mean relative error (a failed seed counts as ∞).
    pub median_mean_relative_error: f64,
    /// Worst seed's mean relative error.
    pub worst_mean_relative_error: f64,
    /// Worst seed's largest relative error.
    pub worst_max_relative_error: f64,
    /// Median and worst over the seeds of the trained network's mean error (before the
    /// refit), when every seed's refit ran.
    pub trained_median_mean_relative_error: Option<f64>,
    /// See `trained_median_mean_relative_error`.
    pub trained_worst_mean_relative_error: Option<f64>,
}

/// The median of `v` (the mean of the middle two for an even count); NaN counts as +∞.
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v
        .iter()
        .map(|x| if x.is_nan() { f64::INFINITY } else { *x })
        .collect();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => 0.5 * (s[n / 2 - 1] + s[n / 2]),
    }
}

/// The worst (largest) of `v`; NaN (a failed run) counts as +∞.
pub fn worst(v: &[f64]) -> f64 {
    v.iter()
        .map(|x| if x.is_nan() { f64::INFINITY } else { *x })
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Groups `results` by case (in their order) and summarises each over its seeds.
pub fn over_seeds(results: &[CaseResult]) -> Vec<OverSeeds> {
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        if !names.contains(&r.name.as_str()) {
            names.push(&r.name);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let rs: Vec<&CaseResult> = results.iter().filter(|r| r.name == name).collect();
            let mean: Vec<f64> = rs.iter().map(|r| r.mean_relative_error).collect();
            let max: Vec<f64> = rs.iter().map(|r| r.max_relative_error).collect();
            let trained: Option<Vec<f64>> =
                rs.iter().map(|r| r.trained_mean_relative_error).collect();
            OverSeeds {
                name: name.to_string(),
                seeds: rs.iter().map(|r| r.seed).collect(),
                median_mean_relative_error: median(&mean),
                worst_mean_relative_error: worst(&mean),
                worst_max_relative_error: worst(&max),
                trained_median_mean_relative_error: trained.as_deref().map(median),
                trained_worst_mean_relative_error: trained.as_deref().map(worst),
            }
        })
        .collect()
}

/// The over-seeds table as Markdown.
pub fn seeds_table(rows: &[OverSeeds]) -> String {
    let mut s = String::from(
        "| case | seeds | median mean rel. err. | worst mean rel. err. | worst max rel. err. | trained network: median, worst mean |\n\
         |---|---|---|---|---|---|\n",
    );
    let pct = |v: f64| format!("{:.3} %", 100.0 * v);
    for r in rows {
        let trained = match (
            r.trained_median_mean_relative_error,
            r.trained_worst_mean_relative_error,
        ) {
            (Some(m), Some(w)) => format!("{}, {}", pct(m), pct(w)),
            _ => "—".into(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {trained} |\n",
            r.name,
            r.seeds
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            pct(r.median_mean_relative_error),
            pct(r.worst_mean_relative_error),
            pct(r.worst_max_relative_error),
        ));
    }
    s
}

/// The suite's table as Markdown.
pub fn table(results: &[CaseResult]) -> String {
    let mut s = String::from(
        "| case | seed | V | box | N | steps | train s | mean rel. err. | max rel. err. | before the refit | reference |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let before = match (r.trained_mean_relative_error, r.refit_kept) {
            (Some(e), Some(true)) => format!("{:.3} %", 100.0 * e),
            (Some(e), _) => format!("{:.3} % (refit not kept)", 100.0 * e),
            _ => "no refit".into(),
        };
        s.push_str(&format!(
            "| {}{} | {} | `{}` | {} | {} | {} | {:.0} | {:.3} % | {:.3} % | {before} | {} |\n",
            r.name,
            if r.stopped_by_error.is_some() {
                " (stopped: Σ̄ collapsed or non-finite)"
            } else {
                ""
            },
            r.seed,
            r.potential,
            r.half_width,
            r.learned.len(),
            r.steps,
            r.train_seconds,
            100.0 * r.mean_relative_error,
            100.0 * r.max_relative_error,
            r.reference_kind
        ));
    }
    s
}

/// Options of a whole suite run (`spin suite`).
#[derive(Clone, Debug)]
pub struct SuiteOptions {
    /// Training seconds per case.
    pub seconds: f64,
    /// Seed of every case (the first of `seeds`).
    pub seed: u64,
    /// Seeds per case: `seed`, `seed + 1`, …; with more than one, each seed's run folders go
    /// into `out/seed-S/` and `suite.md` starts with the median and worst over the seeds.
    pub seeds: u64,
    /// Ablations: every case with this β, this shift margin, this gauge weight.
    pub beta: Option<f64>,
    /// See `beta`.
    pub shift: Option<f64>,
    /// See `beta`.
    pub gauge: Option<f64>,
    /// Ablation: every case with this objective.
    pub objective: Option<crate::spin::Objective>,
    /// Ablation: every case with this share of its run in the bias-correcting tail.
    pub tail: Option<f64>,
    /// Ablation: every case with this divergence-guard tolerance (maths §16).
    pub guard: Option<f64>,
    /// Ablation: every case with this read-out whitening rate (maths §17).
    pub whiten_readout: Option<f64>,
    /// One run folder per case, `suite.json`, `suite.md`.
    pub out: std::path::PathBuf,
}

/// Runs `cases` one after the other, rewriting `suite.json` and `suite.md` after each, and
/// calls `on_case` before (`None`) and after (`Some`) each.
pub fn run_all(
    ctx: &Arc<GpuContext>,
    cases: &[Case],
    opts: &SuiteOptions,
    mut on_case: impl FnMut(&Case, Option<&CaseResult>),
) -> Result<Vec<CaseResult>> {
    let io = |p: &std::path::Path| {
        let p = p.display().to_string();
        move |source| SpinError::Io {
            path: p.clone(),
            source,
        }
    };
    std::fs::create_dir_all(&opts.out).map_err(io(&opts.out))?;
    let mut results = Vec::new();
    let seeds = opts.seeds.max(1);
    for (case, seed) in cases
        .iter()
        .flat_map(|c| (opts.seed..opts.seed + seeds).map(move |s| (c, s)))
    {
        on_case(case, None);
        let mut cfg = config(case, opts.seconds, seed);
        if let Some(b) = opts.beta {
            cfg.train.beta = b;
        }
        if let Some(m) = opts.shift {
            cfg.train.shift = m;
        }
        if let Some(o) = opts.objective {
            cfg.train.objective = o;
        }
        if let Some(g) = opts.gauge {
            cfg.train.gauge = g;
        }
        if let Some(f) = opts.tail {
            cfg.train.tail.fraction = f;
        }
        if let Some(g) = opts.guard {
            cfg.train.optimizer.guard = g;
        }
        if let Some(w) = opts.whiten_readout {
            cfg.train.whiten_readout = w;
        }
        let out = if seeds > 1 {
            opts.out.join(format!("seed-{seed}"))
        } else {
            opts.out.clone()
        };
        let mut r = run_case(ctx, case, &cfg, &out)
            .map_err(|e| SpinError::Config(format!("suite case {}: {e}", case.name)))?;
        r.seed = seed;
        on_case(case, Some(&r));
        results.push(r);
        crate::io::write_json(
            &opts.out.join("suite.json"),
            &serde_json::json!({
                "adapter": ctx.adapter().name,
                "seconds_per_case": opts.seconds,
                "beta": opts.beta,
                "shift": opts.shift,
                "gauge": opts.gauge,
                "objective": opts.objective.map(|o| o.name()),
                "tail": opts.tail,
                "guard": opts.guard,
                "whiten_readout": opts.whiten_readout,
                "seeds": seeds,
                "over_seeds": over_seeds(&results),
                "cases": results,
            }),
        )?;
        let md = opts.out.join("suite.md");
        let text = if seeds > 1 {
            format!(
                "{}\nEvery seed:\n\n{}",
                seeds_table(&over_seeds(&results)),
                table(&results)
            )
        } else {
            table(&results)
        };
        crate::io::write_atomic(&md, text.as_bytes())?;
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, seed: u64, mean: f64, max: f64, trained: Option<f64>) -> CaseResult {
        CaseResult {
            name: name.into(),
            seed,
            dim: 2,
            potential: "x".into(),
            half_width: 1.0,
            learned: vec![],
            std_errors: vec![],
            reference: vec![],
            reference_kind: String::new(),
            relative_errors: vec![],
            mean_relative_error: mean,
            max_relative_error: max,
            trained_mean_relative_error: trained,
            refit_kept: trained.map(|_| true),
            steps: 1,
            train_seconds: 1.0,
            wall_seconds: 1.0,
            stopped_by_error: None,
        }
    }

    #[test]
    fn median_and_worst_count_a_failed_seed_as_infinite() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 1.0, 2.0]), 2.0);
        assert_eq!(worst(&[0.1, 0.3, 0.2]), 0.3);
        assert_eq!(worst(&[0.1, f64::NAN]), f64::INFINITY);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn over_seeds_groups_each_case_in_order() {
        let rs = vec![
            result("a", 0, 0.001, 0.004, Some(0.01)),
            result("a", 1, 0.003, 0.002, Some(0.02)),
            result("b", 0, 0.5, 0.9, None),
            result("a", 2, 0.002, 0.003, Some(0.03)),
        ];
        let s = over_seeds(&rs);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].name.as_str(), s[0].seeds.clone()),
            ("a", vec![0, 1, 2])
        );
        assert_eq!(s[0].median_mean_relative_error, 0.002);
        assert_eq!(s[0].worst_mean_relative_error, 0.003);
        assert_eq!(s[0].worst_max_relative_error, 0.004);
        assert_eq!(s[0].trained_median_mean_relative_error, Some(0.02));
        assert_eq!(s[0].trained_worst_mean_relative_error, Some(0.03));
        assert_eq!(s[1].trained_worst_mean_relative_error, None);
        let md = seeds_table(&s);
        assert!(
            md.contains("| a | 0, 1, 2 | 0.200 % | 0.300 % | 0.400 % | 2.000 %, 3.000 % |"),
            "{md}"
        );
    }
}
