//! `report.html`: one self-contained page per run folder — the command line, the adapter, the
//! metrics table (ours beside exact values or yardsticks, errors and standard errors), every
//! figure of the folder embedded, and the configuration — that a person opens in any browser
//! (no network, no JavaScript).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::error::{Result, SpinError};

/// Figures in the order a reader wants them; any other PNG of the folder follows.
const FIGURE_ORDER: [&str; 8] = [
    "eigenvalues.png",
    "curves.png",
    "eigenfunctions.png",
    "heatmaps.png",
    "extremes.png",
    "eigenpurposes.png",
    "grid.png",
    "suite.png",
];

/// What each known figure shows.
fn caption(name: &str) -> &'static str {
    match name {
        "eigenvalues.png" => "Eigenvalues during training: the EMA of the minibatch estimates (lines), Ritz values on a fixed held-out sample (dots), exact values dashed where known (Fig. 1d/1e).",
        "curves.png" => "Slowness eigenvalues during training: the EMA of the minibatch estimates (lines) and the trained network's held-out Δ-values (dots) (Fig. 3).",
        "eigenfunctions.png" => "The learned eigenfunctions v = L⁻¹u on a slice through the box (Fig. 1c).",
        "heatmaps.png" => "Each learned feature's mean held-out activation by ball position (Fig. 2a).",
        "extremes.png" => "The held-out inputs that most and least activate each learned feature (Fig. 2b).",
        "eigenpurposes.png" => "Eigenpurposes: means of the held-out inputs with the largest and most negative values, learned and PCA (Fig. 4).",
        "grid.png" => "The finite-difference grid's eigenvectors (Fig. 1a).",
        _ => "",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn num(v: &serde_json::Value) -> String {
    if let Some(i) = v.as_u64() {
        return i.to_string();
    }
    match v.as_f64() {
        Some(x) if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) => format!("{x:.4e}"),
        Some(x) => format!("{x:.6}"),
        None if v.is_null() => "—".into(),
        None => escape(&v.to_string()),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("—".into(), |x| format!("{:.3} %", 100.0 * x))
}

/// An HTML table from a header and rows of cells (already escaped).
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::from("<table><thead><tr>");
    for h in header {
        let _ = write!(s, "<th>{}</th>", escape(h));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{c}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

fn column(m: &serde_json::Value, key: &str) -> Vec<serde_json::Value> {
    m[key].as_array().cloned().unwrap_or_default()
}

/// The metrics table of a run, by what its metrics.json holds.
fn metrics_tables(m: &serde_json::Value) -> String {
    if m.get("delta_values").is_some() {
        video_tables(m)
    } else {
        eigenvalue_tables(m)
    }
}

/// A video run's table: held-out Δ-values (lower is slower) against its yardsticks.
fn video_tables(m: &serde_json::Value) -> String {
    let mut s = String::new();
    let ours = column(m, "delta_values");
    let trained = column(&m["trained_network"], "delta_values");
    let sfa = column(m, "linear_sfa_delta_values");
    let pca = column(m, "pca_delta_values");
    let rows: Vec<Vec<String>> = (0..ours.len())
        .map(|k| {
            vec![
                (k + 1).to_string(),
                num(&ours[k]),
                trained.get(k).map_or("—".into(), num),
                sfa.get(k).map_or("—".into(), num),
                pca.get(k).map_or("—".into(), num),
            ]
        })
        .collect();
    s.push_str("<h2>Held-out Δ-values (lower is slower)</h2>");
    s.push_str(&table(
        &[
            "feature",
            "SpIN (final)",
            "trained network before the refit",
            "linear SFA",
            "PCA on pixels",
        ],
        &rows,
    ));
    let sum = |k: &str| m[k].as_f64().map_or("—".into(), |x| format!("{x:.5}"));
    let _ =
        write!(
        s,
        "<p>Sums: SpIN {}, trained network {}, linear SFA {}, PCA {}; SpIN / linear SFA = {}.</p>",
        sum("delta_sum"),
        m["trained_network"]["delta_sum"].as_f64().map_or("—".into(), |x| format!("{x:.5}")),
        sum("linear_sfa_delta_sum"),
        sum("pca_delta_sum"),
        match (m["delta_sum"].as_f64(), m["linear_sfa_delta_sum"].as_f64()) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
            _ => "—".into(),
        }
    );
    if let Some(f) = m["yardsticks_fitted_on"].as_object() {
        s.push_str("<p>Yardsticks fitted on: ");
        for (k, v) in f {
            let _ = write!(s, "{}: {}; ", escape(k), escape(v.as_str().unwrap_or("")));
        }
        s.push_str("</p>");
    }
    s
}

/// The eigenvalue table of a Schrödinger, graph or matrix run.
fn eigenvalue_tables(m: &serde_json::Value) -> String {
    let mut s = String::new();
    let learned = column(m, "eigenvalues");
    let exact = column(m, "exact_eigenvalues");
    let se = column(m, "eigenvalue_std_errors");
    let rel = column(m, "relative_errors");
    let trained = column(&m["trained_network"], "eigenvalues");
    let rows: Vec<Vec<String>> = (0..learned.len())
        .map(|k| {
            vec![
                k.to_string(),
                num(&learned[k]),
                se.get(k).map_or("—".into(), num),
                exact.get(k).map_or("—".into(), num),
                rel.get(k)
                    .and_then(|v| v.as_f64())
                    .map_or("—".into(), |x| pct(Some(x))),
                trained.get(k).map_or("—".into(), num),
            ]
        })
        .collect();
    s.push_str("<h2>Eigenvalues</h2>");
    s.push_str(&table(
        &[
            "k",
            "learned (final)",
            "± standard error",
            "exact",
            "relative error",
            "trained network before the refit",
        ],
        &rows,
    ));
    if m["mean_relative_error"].is_number() {
        let _ = write!(
            s,
            "<p>Mean relative error {}, largest {}; before the read-out refit {}.</p>",
            pct(m["mean_relative_error"].as_f64()),
            pct(m["max_relative_error"].as_f64()),
            pct(m["trained_network"]["mean_relative_error"].as_f64()),
        );
    }
    if m["eval_samples"].is_number() {
        let _ = write!(
            s,
            "<p>Evaluation on {} points.</p>",
            num(&m["eval_samples"])
        );
    }
    s
}

/// The figures of `dir`, in reading order.
pub fn figures(dir: &Path) -> Vec<PathBuf> {
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "png"))
                .collect()
        })
        .unwrap_or_default();
    let rank = |p: &PathBuf| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (
            FIGURE_ORDER
                .iter()
                .position(|f| *f == name)
                .unwrap_or(FIGURE_ORDER.len()),
            name,
        )
    };
    pngs.sort_by_key(rank);
    pngs
}

/// Writes `dir/report.html` for the run in `dir` (its metrics.json and figures), started as
/// `command`; returns its path.
pub fn write(dir: &Path, command: &str) -> Result<PathBuf> {
    let metrics_path = dir.join("metrics.json");
    let m: serde_json::Value = match std::fs::read_to_string(&metrics_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| SpinError::Parse {
            path: metrics_path.display().to_string(),
            message: e.to_string(),
        })?,
        Err(_) => serde_json::json!({}),
    };
    let mut html = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>spin run report</title><style>\
         body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
         h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}\
         pre{background:#f4f4f4;padding:.6em;overflow-x:auto;white-space:pre-wrap}\
         table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right}\
         th{background:#eee}figure{margin:1.2em 0}img{max-width:100%;border:1px solid #ddd}\
         figcaption{font-size:.9em;color:#555}</style></head><body>",
    );
    let _ = write!(
        html,
        "<h1>spin run: {}</h1>",
        escape(&dir.display().to_string())
    );
    let _ = write!(html, "<h2>Command</h2><pre>{}</pre>", escape(command));
    let adapter = m["adapter"].as_str().unwrap_or("(not recorded)");
    let _ = write!(
        html,
        "<p>Adapter: <b>{}</b>. Steps: {}, training {} s ({} steps/s).</p>",
        escape(adapter),
        num(&m["steps"]),
        m["wall_seconds"]
            .as_f64()
            .map_or("—".into(), |x| format!("{x:.1}")),
        m["steps_per_second"]
            .as_f64()
            .map_or("—".into(), |x| format!("{x:.2}"))
    );
    html.push_str(&metrics_tables(&m));
    html.push_str("<h2>Figures</h2>");
    for fig in figures(dir) {
        let name = fig
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(&fig).map_err(|source| SpinError::Io {
            path: fig.display().to_string(),
            source,
        })?;
        let _ = write!(
            html,
            "<figure><img alt=\"{0}\" src=\"data:image/png;base64,{1}\"><figcaption><b>{0}</b>. {2}</figcaption></figure>",
            escape(&name),
            base64::engine::general_purpose::STANDARD.encode(&bytes),
            escape(caption(&name))
        );
    }
    let config = serde_json::to_string_pretty(&m["config"]).unwrap_or_default();
    let _ = write!(html, "<h2>Configuration</h2><pre>{}</pre>", escape(&config));
    html.push_str("<p>Written by spin; every number above is from metrics.json in this folder.</p></body></html>\n");
    let path = dir.join("report.html");
    crate::io::write_atomic(&path, html.as_bytes())?;
    Ok(path)
}
