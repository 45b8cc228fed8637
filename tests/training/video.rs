//! `spin video` end to end on small synthetic videos: a linear network trained by SpIN with the
//! slowness operator reproduces linear SFA; a killed run resumes to the same parameters.

use super::common;

use common::{kill_after_first_checkpoint, logged_steps, spin_ok};

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spectral_inference::data::npy::{NpyArray, NpyData};
use spectral_inference::data::video::Video;
use spectral_inference::experiments::video::{run, Split, VideoConfig, VideoModel};
use spectral_inference::spin::checkpoint;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spin-video-run-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A 1 × 6 "video" whose pixels mix three slow sinusoids, three fast ones and noise.
fn mixed_signal(frames: usize, seed: u64) -> Video {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let freqs = [0.011, 0.023, 0.041, 0.6, 0.9, 1.3];
    let mix: Vec<f64> = (0..36).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut pixels = Vec::with_capacity(frames * 6);
    for t in 0..frames {
        let s: Vec<f64> = freqs
            .iter()
            .map(|w| (w * t as f64 + w * 10.0).sin())
            .collect();
        for p in 0..6 {
            let v: f64 = (0..6).map(|i| mix[p * 6 + i] * s[i]).sum::<f64>()
                + 0.05 * rng.random_range(-1.0..1.0);
            pixels.push((127.5 + 30.0 * v).clamp(0.0, 255.0).round() as u8);
        }
    }
    let mut starts = vec![false; frames];
    starts[0] = true;
    starts[frames / 2] = true;
    Video {
        height: 1,
        width: 6,
        frames: pixels,
        episode_starts: starts,
        positions: None,
    }
}

fn linear_config(data: PathBuf, steps: u64) -> VideoConfig {
    let mut cfg = VideoConfig::ours(data);
    cfg.frames_per_input = 1;
    cfg.conv = vec![];
    cfg.whiten = 0;
    cfg.hidden = vec![];
    cfg.neig = 3;
    cfg.clips = 10;
    cfg.clip_len = 20;
    cfg.train.batch = 200;
    cfg.train.steps = steps;
    cfg.train.optimizer.lr = 3e-2;
    cfg.sfa_pca = 6;
    cfg.checkpoint_every = 50;
    cfg
}

/// Trains `cfg` on a fresh mixed signal and checks its held-out Δ-values against linear SFA's.
fn check_against_linear_sfa(name: &str, whiten: usize) {
    let d = dir(name);
    let data = d.join("signal.npz");
    mixed_signal(4000, 1).save_npz(&data).unwrap();
    let mut cfg = linear_config(data, 1500);
    cfg.whiten = whiten;
    let m = run(common::ctx(), &cfg, &d.join("out"), None).unwrap();
    let get = |k: &str| -> Vec<f64> {
        m[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let (spin, sfa, pca) = (
        get("delta_values"),
        get("linear_sfa_delta_values"),
        get("pca_delta_values"),
    );
    for k in 0..3 {
        assert!(
            (spin[k] - sfa[k]).abs() <= 0.05 * sfa[k] + 1e-4,
            "Δ-value {k}: SpIN {} vs linear SFA {} (all: {spin:?} vs {sfa:?})",
            spin[k],
            sfa[k]
        );
    }
    // The held-out curve: the trained network's Δ-values every 250 steps.
    let curve = std::fs::read_to_string(d.join("out").join("heldout.csv")).unwrap();
    assert_eq!(curve.lines().count(), 1 + 1500 / 250, "{curve}");
    // And both are far slower than the leading principal components.
    assert!(
        sfa.iter().sum::<f64>() < 0.5 * pca.iter().sum::<f64>(),
        "{sfa:?} vs PCA {pca:?}"
    );
    // Linear successor features (LSTD, γ = 0.99) weight the slow sinusoids ~90× and the fast
    // ones ~5×: their three eigenpurposes span the slow subspace, as linear SFA's features do.
    let sf = get("successor_features_delta_values");
    assert_eq!(sf.len(), 3);
    let (sf_sum, sfa_sum) = (sf.iter().sum::<f64>(), sfa.iter().sum::<f64>());
    assert!(
        (sf_sum - sfa_sum).abs() <= 0.05 * sfa_sum,
        "successor features {sf:?} vs linear SFA {sfa:?}"
    );
}

#[test]
fn linear_network_reproduces_linear_sfa() {
    check_against_linear_sfa("linear", 0);
}

/// The same through `--whiten`: the network reads whitened principal coordinates.
#[test]
fn linear_network_on_whitened_inputs_reproduces_linear_sfa() {
    check_against_linear_sfa("linear-whitened", 6);
}

#[test]
fn killed_video_run_resumes_to_the_same_parameters() {
    let d = dir("resume");
    let data = d.join("signal.npz");
    mixed_signal(1000, 2).save_npz(&data).unwrap();
    let common_args = |out: &PathBuf| -> Vec<String> {
        [
            "video",
            "--data",
            data.to_str().unwrap(),
            "--frames-per-input",
            "1",
            "--conv",
            "none",
            // The whitened path: a resumed run and `spin eval` refit the same whitening.
            "--whiten",
            "6",
            "--hidden",
            "5",
            "--neig",
            "2",
            "--clips",
            "4",
            "--clip-length",
            "5",
            "--steps",
            "300",
            "--checkpoint-every",
            "20",
            "--sfa-pca",
            "6",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (full, killed) = (d.join("full"), d.join("killed"));
    spin_ok(common_args(&full));
    let at = kill_after_first_checkpoint(common_args(&killed), &killed);
    spin_ok(["video", "--resume", killed.to_str().unwrap()]);
    let params = |p: &PathBuf| checkpoint::load(p).unwrap().0.params;
    assert_eq!(
        params(&killed),
        params(&full),
        "killed at step {at} and resumed"
    );
    // `--time-limit` counts the earlier invocations: a limit already spent takes no step.
    let trained = checkpoint::load(&full).unwrap().0;
    assert!(trained.train_seconds > 0.0, "{}", trained.train_seconds);
    let limit = format!("{}", trained.train_seconds / 2.0);
    let full_dir = full.to_str().unwrap();
    spin_ok([
        "video",
        "--resume",
        full_dir,
        "--steps",
        "400",
        "--time-limit",
        &limit,
    ]);
    assert_eq!(checkpoint::load(&full).unwrap().0.step, 300);
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(full.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["stopped_by_time_limit"], true);
    assert_eq!(logged_steps(&killed), (1..=300).collect::<Vec<_>>());
    for f in ["metrics.json", "curves.png", "checkpoint.safetensors"] {
        assert!(killed.join(f).exists(), "{f} missing");
    }
    spin_eval_writes_every_inputs_features(&killed, &data, &d);
}

/// `spin eval` on a video run: the learned features of every input, as .npy and as CSV; a
/// Schrödinger-style call (`--points`) is a clear error.
fn spin_eval_writes_every_inputs_features(run: &Path, data: &Path, d: &Path) {
    let killed = run;
    let npy = d.join("features.npy");
    spin_ok([
        "eval",
        "--checkpoint",
        killed.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        npy.to_str().unwrap(),
    ]);
    let a = NpyArray::from_bytes(&std::fs::read(&npy).unwrap(), "features").unwrap();
    assert_eq!(a.shape, vec![1000, 2]);
    let NpyData::F32(v) = &a.data else {
        panic!("features are not float32")
    };
    assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != 0.0));
    let out = Command::new(env!("CARGO_BIN_EXE_spin"))
        .args(["eval", "--checkpoint", killed.to_str().unwrap()])
        .args(["--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().next(), Some("frame,f0,f1"));
    assert_eq!(text.lines().count(), 1001);
    // A Schrödinger-style call on a video run is a clear error.
    let out = Command::new(env!("CARGO_BIN_EXE_spin"))
        .args(["eval", "--checkpoint", killed.to_str().unwrap()])
        .args(["--points", npy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("video run"));
}

/// Large evaluations go through the engine in pieces (the storage binding limit); pieces of
/// any size give the same features as one pass.
#[test]
fn features_evaluated_in_pieces_match_one_pass() {
    use spectral_inference::experiments::video::{load_split, model};
    let d = dir("pieces");
    let data = d.join("signal.npz");
    mixed_signal(600, 3).save_npz(&data).unwrap();
    let mut cfg = linear_config(data, 1);
    cfg.hidden = vec![5];
    let split = load_split(&cfg).unwrap();
    let m = model(common::ctx(), &cfg, &split).unwrap();
    let inputs: Vec<f64> = split.0.frames[..6 * 200]
        .iter()
        .map(|&p| p as f64 / 255.0)
        .collect();
    let whole = m.trainer.outputs_in_pieces(&inputs, 200).unwrap();
    let pieces = m.trainer.outputs_in_pieces(&inputs, 7).unwrap();
    assert_eq!(whole.len(), 200 * m.trainer.problem().spec.outputs);
    assert_eq!(whole, pieces);
    assert_eq!(m.trainer.outputs(&inputs).unwrap(), whole);
}

/// The read-out refit on a briefly trained net over bouncing balls: its Ritz values on the
/// fitting inputs are, one by one, no higher than linear SFA's on the same inputs (its span
/// holds linear SFA's) and their sum no higher than the trained network's; the refitted model's
/// features reproduce those values, also after a trip through the checkpoint's form.
#[test]
fn the_readout_refit_is_never_slower_than_its_parts_on_its_fitting_inputs() {
    use spectral_inference::data::video::input_at;
    use spectral_inference::experiments::sfa::{delta_values, SlowMoments};
    use spectral_inference::experiments::video::{
        fit_readout, fit_validation, yardsticks, VideoReadout, REFIT_REL_TOL, VALIDATION_MARGIN_SE,
    };
    let (cfg, split, mut m) = briefly_trained_balls_model();
    let yard = yardsticks(&cfg, &split.0, &split.1).unwrap();
    let coords = yard.coords.unwrap();
    let refit = fit_readout(&m, &cfg, &split.0, &coords).unwrap();
    // The chosen basis is fitted again on every training input: when it holds every
    // coordinate, its Δ-values there are at most linear SFA's on every training input.
    match report_chosen_basis(&refit.report) {
        Some((_, kc)) => {
            assert!(refit.final_readout.is_some());
            if kc == coords.dim() {
                for k in 0..3 {
                    assert!(
                        refit.report.final_values[k]
                            <= yard.sfa_fit_values[k] * (1.0 + 1e-9) + 1e-12,
                        "final {:?} vs linear SFA {:?} on every training input",
                        refit.report.final_values,
                        yard.sfa_fit_values
                    );
                }
            }
        }
        None => assert!(refit.final_readout.is_none() && refit.report.final_values.is_empty()),
    }
    let (readout, report) = (refit.readouts[0].clone(), refit.report.clone());
    // Candidates: the widest basis first, linear SFA's own last; the chosen one, if any, is
    // the slowest on the validation inputs and slower there than the trained network.
    let c = &report.candidates;
    assert_eq!((c[0].hidden_units, c[0].coordinates), (16, 20));
    assert_eq!(
        (c[c.len() - 1].hidden_units, c[c.len() - 1].coordinates),
        (0, 20)
    );
    if let Some(i) = report.chosen {
        assert!(c.iter().all(|o| c[i].validation <= o.validation));
        // ... by more than the margin (standard errors of the difference), when there is one.
        let margin = VALIDATION_MARGIN_SE * report.validation_difference_se.unwrap_or(0.0);
        assert!(c[i].validation < report.validation_trained - margin);
    }
    assert!(report.error.is_none() && report.fit_inputs > 0 && report.validation_inputs > 0);
    let (fit, _) = fit_validation(&coords.segments, cfg.heldout_fraction);
    // Linear SFA's Ritz values on exactly the fitting inputs.
    let mut z = SlowMoments::new(coords.dim());
    for s in &fit {
        z.add(&coords.rows(s.clone()), None);
    }
    let (sfa_fit, _) = z.slowest(3, REFIT_REL_TOL).unwrap();
    for k in 0..3 {
        assert!(
            report.fit_values[k] <= sfa_fit[k] * (1.0 + 1e-9) + 1e-12,
            "refit {:?} vs linear SFA {sfa_fit:?} on the fitting inputs",
            report.fit_values
        );
    }
    // The fitting inputs, and the features of the trained network and of the refitted model.
    let mut inputs = Vec::new();
    let mut segments = Vec::new();
    for s in &fit {
        let first = segments
            .last()
            .map_or(0, |r: &std::ops::Range<usize>| r.end);
        segments.push(first..first + s.len());
        for &t in &coords.starts[s.clone()] {
            input_at(&split.0, t, cfg.frames_per_input, &mut inputs);
        }
    }
    let learned = |outputs: Vec<f64>| -> Vec<f64> {
        outputs.chunks(4).flat_map(|r| r[1..].to_vec()).collect()
    };
    let trained =
        delta_values(&learned(m.trainer_outputs(&inputs).unwrap()), 3, &segments).unwrap();
    assert!(
        report.fit_values.iter().sum::<f64>() <= trained.iter().sum::<f64>() * (1.0 + 1e-9),
        "refit {:?} vs trained {trained:?}",
        report.fit_values
    );
    let (flat, shape) = readout.to_state();
    m.readout = Some(VideoReadout::from_state(&flat, shape, coords.whitening.clone()).unwrap());
    let refit = delta_values(&learned(m.outputs(&inputs).unwrap()), 3, &segments).unwrap();
    for k in 0..3 {
        assert!(
            (refit[k] - report.fit_values[k]).abs() < 1e-4 * report.fit_values[k].abs() + 1e-9,
            "model {refit:?} vs fitted {:?}",
            report.fit_values
        );
    }
}

/// A dense 16-unit net, N = 3, trained for 60 steps on 3 000 frames of two bouncing balls (12×12).
fn briefly_trained_balls_model() -> (VideoConfig, Split, VideoModel) {
    use spectral_inference::data::balls::BallsVideo;
    use spectral_inference::experiments::video::{load_split, model};
    let d = dir("refit");
    let data = d.join("balls.npz");
    let balls = BallsVideo {
        frames: 3000,
        size: 12,
        balls: 2,
        radius: 0.12,
        speed: 0.04,
        seed: 3,
    };
    balls.generate(|_| {}).unwrap().save_npz(&data).unwrap();
    let mut cfg = VideoConfig::ours(data);
    cfg.conv = vec![];
    cfg.hidden = vec![16];
    cfg.neig = 3;
    cfg.sfa_pca = 20;
    cfg.train.steps = 60;
    cfg.train.batch = cfg.clips * cfg.clip_len;
    let split = load_split(&cfg).unwrap();
    let mut m = model(common::ctx(), &cfg, &split).unwrap();
    for _ in 0..cfg.train.steps {
        m.trainer.step().unwrap();
    }
    (cfg, split, m)
}

/// (hidden units, coordinates) of the candidate a refit chose, if any.
fn report_chosen_basis(
    report: &spectral_inference::experiments::video::RefitReport,
) -> Option<(usize, usize)> {
    report.chosen.map(|i| {
        let c = &report.candidates[i];
        (c.hidden_units, c.coordinates)
    })
}

/// Real frames can stand still (a paused game, a dead agent): a minibatch of identical inputs
/// makes every feature constant on it, so Σ̂ is singular and defines no step. At β = 1 such a
/// minibatch is set aside and another drawn; the run trains through and counts them.
#[test]
fn minibatches_of_frozen_frames_are_set_aside_at_beta_one() {
    let d = dir("frozen");
    let data = d.join("frozen.npz");
    let mut video = mixed_signal(2000, 5);
    // 20 episodes of 100 frames; every other one is one frame held still.
    video.episode_starts = (0..2000).map(|t| t % 100 == 0).collect();
    for e in (0..20).step_by(2) {
        let first = video.frames[e * 100 * 6..(e * 100 + 1) * 6].to_vec();
        for t in e * 100..(e + 1) * 100 {
            video.frames[t * 6..(t + 1) * 6].copy_from_slice(&first);
        }
    }
    video.save_npz(&data).unwrap();
    let mut cfg = linear_config(data, 100);
    cfg.clips = 1;
    cfg.clip_len = 20;
    cfg.train.batch = 20;
    cfg.train.optimizer.lr = 1e-2;
    let m = run(common::ctx(), &cfg, &d.join("out"), None).unwrap();
    assert_eq!(m["steps"].as_u64(), Some(100), "{m}");
    let set_aside = m["degenerate_batches"].as_u64().unwrap();
    // About one draw in two is a frozen clip.
    assert!(
        (20..400).contains(&set_aside),
        "{set_aside} minibatches set aside"
    );
    assert!(m["delta_values"][0].as_f64().unwrap().is_finite());
}

/// `spin video --seeds 2`: each seed into OUT/seed-S, and seeds.json with the held-out Δ-sums,
/// their ratio to linear SFA's and their median and worst.
#[test]
fn seeds_run_each_seed_and_summarise_the_heldout_delta_sum() {
    let d = dir("seeds");
    let data = d.join("signal.npz");
    mixed_signal(600, 3).save_npz(&data).unwrap();
    let out = d.join("out");
    spin_ok([
        "video",
        "--data",
        data.to_str().unwrap(),
        "--frames-per-input",
        "1",
        "--conv",
        "none",
        "--hidden",
        "5",
        "--neig",
        "2",
        "--clips",
        "4",
        "--clip-length",
        "5",
        "--steps",
        "40",
        "--sfa-pca",
        "6",
        "--seed",
        "3",
        "--seeds",
        "2",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let sums = common::check_seeds_summary(&out, &[3, 4], "delta_sum");
    let ratios = common::check_seeds_summary(&out, &[3, 4], "ratio_to_linear_sfa");
    for (seed, (sum, ratio)) in [3, 4].iter().zip(sums.iter().zip(&ratios)) {
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("seed-{seed}/metrics.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(m["delta_sum"].as_f64(), Some(*sum));
        let sfa = m["linear_sfa_delta_sum"].as_f64().unwrap();
        assert!(
            (ratio - sum / sfa).abs() <= 1e-12 * ratio.abs(),
            "{ratio} vs {sum}/{sfa}"
        );
    }
    assert_ne!(sums[0], sums[1], "two seeds, two runs");
    // The trained network's column has every seed: its own Δ-sum beside a kept refit, the kept
    // features' when no refit was kept (they are the trained network's).
    let trained = common::check_seeds_summary(&out, &[3, 4], "trained_delta_sum");
    for (seed, t) in [3, 4].iter().zip(&trained) {
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("seed-{seed}/metrics.json"))).unwrap(),
        )
        .unwrap();
        let want = m["trained_network"]["delta_sum"]
            .as_f64()
            .unwrap_or_else(|| m["delta_sum"].as_f64().unwrap());
        assert!((t - want).abs() <= 1e-12 * want.abs(), "{t} vs {want}");
    }
}
