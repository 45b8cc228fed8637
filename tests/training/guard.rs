//! The divergence guard in the training loop (maths §16): a held-out curve that jumps sends the
//! run back to its last healthy held-out point at half the learning rate, the CSVs end where the
//! kept run is, and the continuation is the one a run restarted from that point would take.

use super::common;
use super::schrodinger::small_config;

use std::cell::Cell;

use common::ctx;
use spectral_inference::experiments::training::{self, eigen_csv_header, eigen_hooks, Heldout};
use spectral_inference::spin::Trainer;

#[test]
fn a_jump_in_the_heldout_curve_rolls_the_run_back_at_half_the_rate() {
    let ctx = ctx();
    let mut cfg = small_config(60);
    cfg.train.optimizer.guard = 0.1;
    let dir = std::env::temp_dir().join(format!("spin-guard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let new = || Trainer::new(ctx.clone(), cfg.problem(&ctx).unwrap(), cfg.train.clone()).unwrap();
    // A scripted held-out curve: flat at a sum of −1, except that the first visit of step 40
    // jumps to −0.5 — one spread of its values (the trainer itself is not looked at).
    let jumped = Cell::new(false);
    let heldout = Heldout {
        every: 10,
        eval: Box::new(|t: &mut Trainer| {
            if t.step == 40 && !jumped.replace(true) {
                Ok(vec![-0.5, 0.0])
            } else {
                Ok(vec![-1.0, 0.0])
            }
        }),
    };
    let spec = training::RunSpec {
        out: dir.clone(),
        run_json: serde_json::json!({}),
        steps: 60,
        time_limit: None,
        checkpoint_every: 0,
        earlier_seconds: 0.0,
        csv_header: eigen_csv_header(cfg.neig),
    };
    let mut guarded = new();
    let out = training::train(&mut guarded, &spec, eigen_hooks(Some(heldout), 0)).unwrap();
    assert_eq!(out.rollbacks.len(), 1, "{:?}", out.rollbacks);
    let b = &out.rollbacks[0];
    assert_eq!((b.step, b.to_step, b.lr_scale), (40, 30, 0.5));
    assert!((b.rise - 1.0).abs() < 1e-12, "rise {}", b.rise);
    assert_eq!(guarded.step, 60);
    assert_eq!(guarded.optimizer.lr_scale, 0.5);
    assert_eq!(out.steps(&guarded), 70, "60 advanced + 10 undone");
    // The CSVs hold the run as kept: every step once, in order.
    let (steps, _) = training::read_rows(&dir.join("eigenvalues.csv"));
    assert_eq!(steps, (1..=60).collect::<Vec<u64>>());
    let (held, _) = training::read_rows(&dir.join("heldout.csv"));
    assert_eq!(held, vec![10, 20, 30, 40, 50, 60]);
    assert_eq!(out.heldout_steps, held);
    // The same as a run that stopped at step 30 and went on at half the rate, bit for bit (θ,
    // Σ̄, J̄, the optimiser and the RNG all came back).
    let mut replay = new();
    for _ in 0..30 {
        replay.step().unwrap();
    }
    replay.optimizer.lr_scale = 0.5;
    for _ in 30..60 {
        replay.step().unwrap();
    }
    assert_eq!(replay.params, guarded.params);
    assert_eq!(replay.sigma_avg, guarded.sigma_avg);
    assert_eq!(replay.state().unwrap(), guarded.state().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_flat_heldout_curve_leaves_the_run_as_it_was() {
    // The guard only ever acts on a jump: with a curve that never rises, a guarded run ends with
    // an unguarded one's parameters bit for bit.
    let ctx = ctx();
    let dir = std::env::temp_dir().join(format!("spin-noguard-{}", std::process::id()));
    let cfg = small_config(30);
    let run = |guard: f64, sub: &str| {
        let mut cfg = cfg.clone();
        cfg.train.optimizer.guard = guard;
        let mut t =
            Trainer::new(ctx.clone(), cfg.problem(&ctx).unwrap(), cfg.train.clone()).unwrap();
        let heldout = Heldout {
            every: 5,
            eval: Box::new(|t: &mut Trainer| Ok(vec![-(t.step as f64), 0.0])),
        };
        let spec = training::RunSpec {
            out: dir.join(sub),
            run_json: serde_json::json!({}),
            steps: 30,
            time_limit: None,
            checkpoint_every: 0,
            earlier_seconds: 0.0,
            csv_header: eigen_csv_header(cfg.neig),
        };
        let out = training::train(&mut t, &spec, eigen_hooks(Some(heldout), 0)).unwrap();
        assert!(out.rollbacks.is_empty());
        t.params
    };
    let guarded = run(0.1, "guarded");
    assert_eq!(guarded, run(0.0, "plain"));
    let _ = std::fs::remove_dir_all(&dir);
}
