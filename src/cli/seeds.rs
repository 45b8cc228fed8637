//! `--seeds K` on `spin schrodinger` and `spin hydrogen`: the same run on seeds S, S + 1, …,
//! each into OUT/seed-S, and OUT/seeds.json and OUT/seeds.md with every seed's numbers and their
//! median and worst (the form every claim takes in docs/results).

use std::path::Path;

use anyhow::{Context, Result};
use spectral_inference::experiments::schrodinger::SchrodingerConfig;
use spectral_inference::experiments::suite::{median, worst};

/// One seed's outcome, from its `metrics.json`.
#[derive(Clone, Debug, serde::Serialize)]
struct SeedRow {
    seed: u64,
    /// Mean relative error of the reported eigenvalues (None without exact values).
    mean_relative_error: Option<f64>,
    /// Largest relative error.
    max_relative_error: Option<f64>,
    /// The trained network's mean relative error before the read-out refit (None without a
    /// refit or exact values).
    trained_mean_relative_error: Option<f64>,
    /// Σλ: what the loss minimises (lower is better), for potentials without exact values.
    eigenvalue_sum: f64,
    /// Steps and training seconds.
    steps: u64,
    train_seconds: f64,
    /// The divergence guard's rollbacks (maths §16).
    rollbacks: usize,
}

impl SeedRow {
    fn from_metrics(seed: u64, m: &serde_json::Value) -> Self {
        let eig: Vec<f64> = serde_json::from_value(m["eigenvalues"].clone()).unwrap_or_default();
        SeedRow {
            seed,
            mean_relative_error: m["mean_relative_error"].as_f64(),
            max_relative_error: m["max_relative_error"].as_f64(),
            trained_mean_relative_error: m["trained_network"]["mean_relative_error"].as_f64(),
            eigenvalue_sum: eig.iter().sum(),
            steps: m["steps"].as_u64().unwrap_or(0),
            train_seconds: m["train_seconds_all_invocations"].as_f64().unwrap_or(0.0),
            rollbacks: m["guard"]["rollbacks"].as_array().map_or(0, |r| r.len()),
        }
    }
}

/// Median and worst of a column over the seeds (a missing value counts as a failure, +∞).
fn summary(rows: &[SeedRow], column: impl Fn(&SeedRow) -> Option<f64>) -> serde_json::Value {
    let v: Vec<f64> = rows.iter().map(|r| column(r).unwrap_or(f64::NAN)).collect();
    if v.iter().all(|x| x.is_nan()) {
        return serde_json::Value::Null;
    }
    serde_json::json!({ "median": median(&v), "worst": worst(&v) })
}

/// Percent with three decimals, or a dash.
fn pct(v: Option<f64>) -> String {
    v.map_or("—".into(), |x| format!("{:.3}", 100.0 * x))
}

/// Writes OUT/seeds.json and OUT/seeds.md for the seeds so far.
fn write_summary(out: &Path, command: &str, rows: &[SeedRow]) -> Result<()> {
    let json = serde_json::json!({
        "command": command,
        "seeds": rows,
        "mean_relative_error": summary(rows, |r| r.mean_relative_error),
        "max_relative_error": summary(rows, |r| r.max_relative_error),
        "trained_mean_relative_error": summary(rows, |r| r.trained_mean_relative_error),
        "eigenvalue_sum": summary(rows, |r| Some(r.eigenvalue_sum)),
    });
    spectral_inference::io::write_json(&out.join("seeds.json"), &json)?;
    let mut md = format!(
        "# {command}\n\nRelative errors in % (after the read-out refit when there is one; *trained*: the network before it).\n\n\
         | seed | mean | max | trained mean | Σλ | steps | training s | guard's rollbacks |\n|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.6} | {} | {:.0} | {} |\n",
            r.seed,
            pct(r.mean_relative_error),
            pct(r.max_relative_error),
            pct(r.trained_mean_relative_error),
            r.eigenvalue_sum,
            r.steps,
            r.train_seconds,
            r.rollbacks
        ));
    }
    let at = |key: &str, which: &str| json[key][which].as_f64();
    for which in ["median", "worst"] {
        md.push_str(&format!(
            "| **{which}** | {} | {} | {} | {} | | | |\n",
            pct(at("mean_relative_error", which)),
            pct(at("max_relative_error", which)),
            pct(at("trained_mean_relative_error", which)),
            at("eigenvalue_sum", which).map_or("—".into(), |v| format!("{v:.6}")),
        ));
    }
    std::fs::write(out.join("seeds.md"), md)
        .with_context(|| format!("writing {}", out.join("seeds.md").display()))
}

/// Runs `cfg` on `k` seeds from its own, each with `run` into OUT/seed-S, rewriting the
/// summary after each, and prints the median and worst.
pub fn over_seeds(
    cfg: &SchrodingerConfig,
    out: &Path,
    k: u64,
    mut run: impl FnMut(&SchrodingerConfig, &Path) -> Result<serde_json::Value>,
) -> Result<()> {
    let first = cfg.train.seed;
    let command = std::iter::once("spin".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let mut rows = Vec::new();
    for seed in first..first + k {
        let mut c = cfg.clone();
        c.train.seed = seed;
        let dir = out.join(format!("seed-{seed}"));
        eprintln!(
            "== seed {seed} ({} of {k}) → {}",
            seed - first + 1,
            dir.display()
        );
        let m = run(&c, &dir)?;
        rows.push(SeedRow::from_metrics(seed, &m));
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        write_summary(out, &command, &rows)?;
    }
    let mean = summary(&rows, |r| r.mean_relative_error);
    let trained = summary(&rows, |r| r.trained_mean_relative_error);
    let at = |s: &serde_json::Value, which: &str| pct(s[which].as_f64());
    println!(
        "over {k} seeds: mean relative error median {} %, worst {} % (trained network: {} %, {} %); {}",
        at(&mean, "median"),
        at(&mean, "worst"),
        at(&trained, "median"),
        at(&trained, "worst"),
        out.join("seeds.md").display()
    );
    Ok(())
}
