//! `--seeds K` on `spin schrodinger`, `hydrogen`, `video` and `graph`: the same run on seeds
//! S, S + 1, …, each into OUT/seed-S, and OUT/seeds.json and OUT/seeds.md with every seed's
//! numbers and their median and worst (the form every claim takes in docs/results).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use spectral_inference::experiments::suite::{median, worst};
use spectral_inference::spin::checkpoint::TrainerState;

/// A column of the seeds table: lower is better in every one, so the worst seed is the largest.
pub struct Column {
    /// Its key in seeds.json (each seed's row and the summary).
    key: &'static str,
    /// Its heading in seeds.md.
    heading: &'static str,
    /// Read from a run's `metrics.json` (None: not measured in that run).
    read: fn(&Value) -> Option<f64>,
    /// Shown as a percentage with three decimals (relative errors); otherwise with `decimals`.
    percent: bool,
    decimals: usize,
}

impl Column {
    fn show(&self, v: Option<f64>) -> String {
        match v {
            Some(x) if self.percent => format!("{:.3}", 100.0 * x),
            Some(x) => format!("{x:.p$}", p = self.decimals),
            None => "—".into(),
        }
    }
}

/// The numbers of a list in `metrics.json`.
fn list(v: &Value) -> Option<Vec<f64>> {
    let a = v.as_array()?;
    let x: Vec<f64> = a.iter().filter_map(Value::as_f64).collect();
    (x.len() == a.len() && !x.is_empty()).then_some(x)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// `a / b` when both are there.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

/// `spin schrodinger` and `spin hydrogen`: relative errors against the exact levels (after the
/// refit, and the trained network's before it) and Σλ, which the loss minimises, for
/// potentials without exact values.
pub const SCHRODINGER: &[Column] = &[
    Column {
        key: "mean_relative_error",
        heading: "mean",
        read: |m| m["mean_relative_error"].as_f64(),
        percent: true,
        decimals: 0,
    },
    Column {
        key: "max_relative_error",
        heading: "max",
        read: |m| m["max_relative_error"].as_f64(),
        percent: true,
        decimals: 0,
    },
    Column {
        key: "trained_mean_relative_error",
        heading: "trained mean",
        read: |m| m["trained_network"]["mean_relative_error"].as_f64(),
        percent: true,
        decimals: 0,
    },
    Column {
        key: "eigenvalue_sum",
        heading: "Σλ",
        read: |m| list(&m["eigenvalues"]).map(|v| v.iter().sum()),
        percent: false,
        decimals: 6,
    },
];

/// `spin video`: the held-out Δ-sum (what slow feature analysis minimises) and its ratio to
/// linear SFA's, after the refit and for the trained network before it.
pub const VIDEO: &[Column] = &[
    Column {
        key: "delta_sum",
        heading: "held-out Δ-sum",
        read: |m| m["delta_sum"].as_f64(),
        percent: false,
        decimals: 4,
    },
    Column {
        key: "ratio_to_linear_sfa",
        heading: "× linear SFA",
        read: |m| ratio(m["delta_sum"].as_f64(), m["linear_sfa_delta_sum"].as_f64()),
        percent: false,
        decimals: 3,
    },
    Column {
        key: "trained_delta_sum",
        heading: "trained Δ-sum",
        read: trained_delta_sum,
        percent: false,
        decimals: 4,
    },
    Column {
        key: "trained_ratio_to_linear_sfa",
        heading: "trained × linear SFA",
        read: |m| ratio(trained_delta_sum(m), m["linear_sfa_delta_sum"].as_f64()),
        percent: false,
        decimals: 3,
    },
];

/// The trained network's held-out Δ-sum: recorded beside the refit's when a refit was kept;
/// without one the kept features are the trained network's own.
fn trained_delta_sum(m: &serde_json::Value) -> Option<f64> {
    m["trained_network"]["delta_sum"]
        .as_f64()
        .or_else(|| m["delta_sum"].as_f64())
}

/// `spin graph`: Σλ of the kept read-out and of the trained network (exact Ritz values over
/// the whole graph), and the relative errors against the sparse eigensolver's when it ran.
pub const GRAPH: &[Column] = &[
    Column {
        key: "eigenvalue_sum",
        heading: "Σλ",
        read: |m| list(&m["eigenvalues"]).map(|v| v.iter().sum()),
        percent: false,
        decimals: 6,
    },
    Column {
        key: "trained_eigenvalue_sum",
        heading: "trained Σλ",
        read: |m| list(&m["trained_network_eigenvalues"]).map(|v| v.iter().sum()),
        percent: false,
        decimals: 6,
    },
    Column {
        key: "mean_relative_error",
        heading: "mean",
        read: |m| list(&m["exact"]["relative_errors"]).map(|v| mean(&v)),
        percent: true,
        decimals: 0,
    },
    Column {
        key: "max_relative_error",
        heading: "max",
        read: |m| list(&m["exact"]["relative_errors"]).map(|v| worst(&v)),
        percent: true,
        decimals: 0,
    },
];

/// One seed's row: the columns' values, steps, training seconds and the guard's rollbacks.
fn row(seed: u64, columns: &[Column], m: &Value) -> Value {
    let mut r = serde_json::Map::new();
    r.insert("seed".into(), seed.into());
    for c in columns {
        r.insert(c.key.into(), (c.read)(m).into());
    }
    r.insert("steps".into(), m["steps"].as_u64().unwrap_or(0).into());
    let seconds = m["train_seconds_all_invocations"]
        .as_f64()
        .or_else(|| m["wall_seconds"].as_f64())
        .unwrap_or(0.0);
    r.insert("train_seconds".into(), seconds.into());
    let rollbacks = m["guard"]["rollbacks"].as_array().map_or(0, Vec::len);
    r.insert("rollbacks".into(), rollbacks.into());
    Value::Object(r)
}

/// Median and worst of a column over the seeds (a missing value counts as a failure, +∞);
/// null when no seed has it.
fn summary(rows: &[Value], key: &str) -> Value {
    let v: Vec<f64> = rows
        .iter()
        .map(|r| r[key].as_f64().unwrap_or(f64::NAN))
        .collect();
    if v.iter().all(|x| x.is_nan()) {
        return Value::Null;
    }
    serde_json::json!({ "median": median(&v), "worst": worst(&v) })
}

/// Writes OUT/seeds.json and OUT/seeds.md for the seeds so far; returns the JSON.
fn write_summary(out: &Path, command: &str, columns: &[Column], rows: &[Value]) -> Result<Value> {
    let mut json = serde_json::Map::new();
    json.insert("command".into(), command.into());
    json.insert("seeds".into(), rows.to_vec().into());
    for c in columns {
        json.insert(c.key.into(), summary(rows, c.key));
    }
    let json = Value::Object(json);
    spectral_inference::io::write_json(&out.join("seeds.json"), &json)?;
    let headings: Vec<&str> = columns.iter().map(|c| c.heading).collect();
    let mut md = format!(
        "# {command}\n\nLower is better in every column; relative errors in %; the numbers after the read-out refit when there is one (*trained*: the network before it).\n\n\
         | seed | {} | steps | training s | guard's rollbacks |\n|---|{}---|---|---|\n",
        headings.join(" | "),
        "---|".repeat(columns.len())
    );
    for r in rows {
        let cells: Vec<String> = columns.iter().map(|c| c.show(r[c.key].as_f64())).collect();
        md.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} |\n",
            r["seed"],
            cells.join(" | "),
            r["steps"],
            r["train_seconds"].as_f64().unwrap_or(0.0),
            r["rollbacks"]
        ));
    }
    for which in ["median", "worst"] {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| c.show(json[c.key][which].as_f64()))
            .collect();
        md.push_str(&format!("| **{which}** | {} | | | |\n", cells.join(" | ")));
    }
    std::fs::write(out.join("seeds.md"), md)
        .with_context(|| format!("writing {}", out.join("seeds.md").display()))?;
    Ok(json)
}

/// `--seeds K` for a command: K = 1 is one run into OUT (resumed from `state` if given); K > 1
/// runs `cfg` on seeds `*seed(cfg)`, +1, …, each into OUT/seed-S with `run`, rewriting the
/// summary after each, and prints every column's median and worst.
pub fn run<C: Clone>(
    k: Option<u64>,
    cfg: &C,
    seed: fn(&mut C) -> &mut u64,
    columns: &[Column],
    out: &Path,
    state: Option<TrainerState>,
    mut run: impl FnMut(&C, &Path, Option<TrainerState>) -> Result<Value>,
) -> Result<()> {
    let k = match k.unwrap_or(1) {
        0 => bail!("--seeds must be at least 1"),
        1 => return run(cfg, out, state).map(|_| ()),
        _ if state.is_some() => {
            bail!("--seeds starts new runs; resume each OUT/seed-S with --resume on its own")
        }
        k => k,
    };
    let first = *seed(&mut cfg.clone());
    let command = std::iter::once("spin".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let mut rows = Vec::new();
    let mut json = Value::Null;
    for s in first..first + k {
        let mut c = cfg.clone();
        *seed(&mut c) = s;
        let dir = out.join(format!("seed-{s}"));
        eprintln!("== seed {s} ({} of {k}) → {}", s - first + 1, dir.display());
        let m = run(&c, &dir, None)?;
        rows.push(row(s, columns, &m));
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        json = write_summary(out, &command, columns, &rows)?;
    }
    let cells: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "{} {} / {}{}",
                c.heading,
                c.show(json[c.key]["median"].as_f64()),
                c.show(json[c.key]["worst"].as_f64()),
                if c.percent { " %" } else { "" }
            )
        })
        .collect();
    println!(
        "over {k} seeds (median / worst): {}; {}",
        cells.join(", "),
        out.join("seeds.md").display()
    );
    Ok(())
}
