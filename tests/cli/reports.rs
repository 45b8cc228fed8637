//! What a person sees: progress lines when stderr is not a terminal (none with `--quiet`), the
//! held-out curve, and `report.html` naming every figure of the run folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::common::{self, spin_ok};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spin-reports-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A short 1D oscillator run (stderr piped: not a terminal).
fn oscillator(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "schrodinger",
        "--dim",
        "1",
        "--potential",
        "x * x",
        "--box",
        "5",
        "--neig",
        "2",
        "--steps",
        "300",
        "--heldout-every",
        "100",
        "--eval-samples",
        "16384",
        "--eval-target",
        "0",
        "--out",
    ];
    args.push(out.to_str().unwrap());
    args.extend_from_slice(extra);
    let o = Command::new(env!("CARGO_BIN_EXE_spin"))
        .args(&args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn progress_lines(stderr: &[u8]) -> usize {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with("step ") && l.contains("steps/s") && l.contains("elapsed"))
        .count()
}

#[test]
fn a_run_without_a_terminal_logs_progress_writes_its_heldout_curve_and_a_report() {
    let out = dir("log");
    let o = oscillator(&out, &[]);
    // 5 % steps of a 300-step run: a line every 15 steps at least, and the last one.
    let lines = progress_lines(&o.stderr);
    assert!(
        lines >= 10,
        "{lines} progress lines:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The held-out curve: steps 100, 200, 300, two ascending values each.
    let text = std::fs::read_to_string(out.join("heldout.csv")).unwrap();
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        rows.iter().map(|r| r[0] as u64).collect::<Vec<_>>(),
        [100, 200, 300]
    );
    assert!(rows
        .iter()
        .all(|r| r.len() == 3 && r[1] <= r[2] && r[1].is_finite()));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert!(metrics["heldout_seconds"].as_f64().unwrap() > 0.0);
    // The divergence guard is off by default, and the metrics say so.
    assert_eq!(metrics["guard"]["tolerance"], 0.0);
    assert_eq!(metrics["guard"]["rollbacks"], serde_json::json!([]));
    assert_eq!(metrics["guard"]["lr_scale"], 1.0);
    // The report names every figure of the folder, embedded, with the command line.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let pngs: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    assert!(pngs.len() >= 2, "{pngs:?}");
    for p in &pngs {
        assert!(
            html.contains(&format!("alt=\"{p}\"")),
            "report.html misses {p}"
        );
    }
    assert_eq!(html.matches("data:image/png;base64,").count(), pngs.len());
    assert!(html.contains("--heldout-every 100") && html.contains("x * x"));
    assert!(
        html.contains("<table>") && !html.contains("http"),
        "self-contained"
    );
}

#[test]
fn quiet_runs_log_no_progress() {
    let out = dir("quiet");
    let o = oscillator(&out, &["--quiet"]);
    assert_eq!(progress_lines(&o.stderr), 0);
}

#[test]
fn seeds_runs_each_seed_into_its_folder_and_summarises_median_and_worst() {
    let dir = std::env::temp_dir().join(format!("spin-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    spin_ok([
        "schrodinger",
        "--potential",
        "harmonic",
        "--dim",
        "1",
        "--neig",
        "2",
        "--steps",
        "30",
        "--seed",
        "5",
        "--seeds",
        "3",
        "--eval-samples",
        "4096",
        "--eval-target",
        "0",
        "--readout-refit",
        "false",
        "--heldout-every",
        "0",
        "--quiet",
        "--out",
        d,
    ]);
    common::check_seeds_summary(&dir, &[5, 6, 7], "mean_relative_error");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("seeds.json")).unwrap()).unwrap();
    // No held-out curve, so the guard never acted.
    let rows = s["seeds"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["rollbacks"].as_u64() == Some(0)));
    let md = std::fs::read_to_string(dir.join("seeds.md")).unwrap();
    assert!(md.contains("guard's rollbacks"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}
