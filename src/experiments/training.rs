//! One training loop for every experiment: a CSV row per step (kept up to the checkpoint when a
//! run resumes), progress on a terminal bar or as log lines, the time limit and the schedule
//! that anneals within it, periodic and final checkpoints, and a clean stop on a failed step.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::guard::{Guard, Rollback};
use crate::error::{Result, SpinError};
use crate::spin::checkpoint::{self, TrainerState};
use crate::spin::{StepReport, Trainer};

/// The header of `heldout.csv`.
const HELDOUT_HEADER: &str = "step,values (ascending)";

/// The step count of a run that only its time limit ends (`--time-limit` without `--steps`).
pub const UNTIL_TIME_LIMIT: u64 = 1_000_000_000;

/// What a run writes and when it stops.
pub struct RunSpec {
    /// The run folder: `eigenvalues.csv` and the checkpoint.
    pub out: PathBuf,
    /// The run's description, saved with every checkpoint (`spin eval` and `--resume` read it).
    pub run_json: serde_json::Value,
    /// The run stops at this step.
    pub steps: u64,
    /// … or after this many seconds of training, over every invocation.
    pub time_limit: Option<f64>,
    /// A checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Training seconds of the invocations before this one (a resumed run).
    pub earlier_seconds: f64,
    /// The CSV's header line.
    pub csv_header: String,
}

/// Called before every step.
pub type BeforeStep<'a> = Box<dyn FnMut(&mut Trainer) -> Result<()> + 'a>;

/// Evaluates the held-out curve for the trainer as it is.
pub type HeldoutEval<'a> = Box<dyn FnMut(&mut Trainer) -> Result<Vec<f64>> + 'a>;

/// A fixed held-out estimate of the eigenvalues, evaluated every `every` steps (and after the
/// last): what a reader of the curves can trust where the EMA of minibatch estimates is biased.
pub struct Heldout<'a> {
    /// Steps between evaluations.
    pub every: u64,
    /// The values (ascending) for the trainer as it is; must not touch its training state.
    pub eval: HeldoutEval<'a>,
}

/// What the experiment adds to the loop.
pub struct Hooks<'a> {
    /// Called before every step (e.g. refitting an adaptive proposal).
    pub before_step: BeforeStep<'a>,
    /// The CSV row of a step (no newline).
    pub csv_row: Box<dyn Fn(&StepReport) -> String + 'a>,
    /// The estimates shown beside the progress bar and in log lines.
    pub status: Box<dyn Fn(&StepReport) -> String + 'a>,
    /// The held-out curve, written to `heldout.csv`, if any.
    pub heldout: Option<Heldout<'a>>,
}

/// How a run's training went.
#[derive(Debug)]
pub struct Outcome {
    /// The trainer's step when this invocation started.
    pub first_step: u64,
    /// Seconds this invocation trained.
    pub wall: f64,
    /// Whether the time limit ended it.
    pub stopped_by_time: bool,
    /// A failed step (collapsed Σ̄, non-finite loss) that ended it: the trainer is at its last
    /// good state, which is checkpointed; the caller still evaluates and then reports this.
    pub failure: Option<SpinError>,
    /// The held-out curve of this invocation: steps and values per step.
    pub heldout_steps: Vec<u64>,
    /// See `heldout_steps`.
    pub heldout_values: Vec<Vec<f64>>,
    /// Seconds spent on held-out evaluations (inside `wall`).
    pub heldout_seconds: f64,
    /// The divergence guard's rollbacks in this invocation (maths §16).
    pub rollbacks: Vec<Rollback>,
}

impl Outcome {
    /// An invocation that starts at `first_step` and has done nothing yet.
    fn starting_at(first_step: u64) -> Self {
        Self {
            first_step,
            wall: 0.0,
            stopped_by_time: false,
            failure: None,
            heldout_steps: Vec::new(),
            heldout_values: Vec::new(),
            heldout_seconds: 0.0,
            rollbacks: Vec::new(),
        }
    }

    /// Steps this invocation took (with the guard's rollbacks, more than it advanced).
    pub fn steps(&self, trainer: &Trainer) -> u64 {
        trainer.step - self.first_step
            + self
                .rollbacks
                .iter()
                .map(|b| b.step - b.to_step)
                .sum::<u64>()
    }

    /// Steps per second of this invocation's training; none when it took no step (a finished
    /// run resumed only to be evaluated again).
    pub fn steps_per_second(&self, trainer: &Trainer) -> Option<f64> {
        let steps = self.steps(trainer);
        (steps > 0 && self.wall > 0.0).then(|| steps as f64 / self.wall)
    }

    /// The guard's part of `metrics.json`: its tolerance (0: off), the rollbacks and the
    /// learning-rate factor the run ended with.
    pub fn guard_metrics(&self, trainer: &Trainer) -> serde_json::Value {
        serde_json::json!({
            "tolerance": trainer.optimizer.config.guard,
            "rollbacks": self.rollbacks,
            "lr_scale": trainer.optimizer.lr_scale,
        })
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> SpinError {
    let p = path.display().to_string();
    move |source| SpinError::Io {
        path: p.clone(),
        source,
    }
}

/// Starts the CSV at `path` with `header` and the rows of an earlier invocation up to `step` (a
/// resumed run's checkpoint), and opens it for appending.
/// On a worker other than rank 0 of a data-parallel run, a sink: rank 0 writes every file.
fn open_rows(path: &Path, header: &str, step: u64) -> Result<Box<dyn Write>> {
    if !crate::spin::parallel::is_writer() {
        return Ok(Box::new(std::io::sink()));
    }
    let mut kept = String::new();
    if step > 0 {
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines().skip(1) {
                let s: Option<u64> = line.split(',').next().and_then(|s| s.parse().ok());
                if s.is_some_and(|s| s <= step) {
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
        }
    }
    crate::io::write_atomic(path, format!("{header}\n{kept}").as_bytes())?;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io_err(path))?;
    Ok(Box::new(std::io::BufWriter::new(file)))
}

/// The held-out curve of a run: its evaluation and `heldout.csv`.
struct HeldoutLog<'a> {
    heldout: Heldout<'a>,
    path: PathBuf,
    file: Box<dyn Write>,
}

impl<'a> HeldoutLog<'a> {
    /// Opens `out/heldout.csv`, keeping an earlier invocation's rows up to `step`.
    fn open(heldout: Heldout<'a>, out: &Path, step: u64) -> Result<Self> {
        let path = out.join("heldout.csv");
        let file = open_rows(&path, HELDOUT_HEADER, step)?;
        Ok(Self {
            heldout,
            path,
            file,
        })
    }

    /// Evaluates the curve for the trainer as it is, appends it to the file and to `out`, and
    /// returns the values.
    fn record(&mut self, trainer: &mut Trainer, out: &mut Outcome) -> Result<Vec<f64>> {
        let t = Instant::now();
        let values = (self.heldout.eval)(trainer)?;
        out.heldout_seconds += t.elapsed().as_secs_f64();
        writeln!(self.file, "{}", csv_row(trainer.step, &values, None))
            .map_err(io_err(&self.path))?;
        self.file.flush().map_err(io_err(&self.path))?;
        out.heldout_steps.push(trainer.step);
        out.heldout_values.push(values.clone());
        Ok(values)
    }

    /// Forgets the points after `step`, in the file and in `out` (the run went back to it).
    fn cut_back(&mut self, step: u64, out: &mut Outcome) -> Result<()> {
        self.file = open_rows(&self.path, HELDOUT_HEADER, step)?;
        let keep = out.heldout_steps.iter().filter(|&&s| s <= step).count();
        out.heldout_steps.truncate(keep);
        out.heldout_values.truncate(keep);
        Ok(())
    }
}

/// Checkpoints written on a thread of their own, so that the disk's sync does not stall
/// training: one write at a time (the next waits for the last). Each file is replaced
/// atomically, so a run killed during a write keeps the previous complete checkpoint.
#[derive(Default)]
struct CheckpointWriter {
    pending: Option<std::thread::JoinHandle<Result<()>>>,
}

impl CheckpointWriter {
    /// Waits for the write in flight, if any, and returns its outcome.
    fn wait(&mut self) -> Result<()> {
        match self.pending.take() {
            Some(h) => h.join().map_err(|_| SpinError::Io {
                path: "checkpoint".into(),
                source: std::io::Error::other("the checkpoint writer panicked"),
            })?,
            None => Ok(()),
        }
    }

    /// Starts writing `state` into `out` once the previous write is done.
    fn save(&mut self, out: &Path, state: TrainerState, run: &serde_json::Value) -> Result<()> {
        self.wait()?;
        if !crate::spin::parallel::is_writer() {
            return Ok(());
        }
        let (out, run) = (out.to_path_buf(), run.clone());
        self.pending = Some(std::thread::spawn(move || {
            checkpoint::save(&out, &state, &run)
        }));
        Ok(())
    }
}

/// Trains `trainer` (already restored, when resuming) until `spec.steps`, the time limit or a
/// failed step, writing the CSV and checkpoints into `spec.out`.
pub fn train(trainer: &mut Trainer, spec: &RunSpec, mut hooks: Hooks) -> Result<Outcome> {
    if crate::spin::parallel::is_writer() {
        std::fs::create_dir_all(&spec.out).map_err(io_err(&spec.out))?;
    }
    let csv_path = spec.out.join("eigenvalues.csv");
    let mut csv = open_rows(&csv_path, &spec.csv_header, trainer.step)?;
    let start = Instant::now();
    let trained_for = || spec.earlier_seconds + start.elapsed().as_secs_f64();
    // In a data-parallel run rank 0's clock decides the time limit and the schedule's
    // progress for every worker (their clocks differ, their steps must not).
    let agreed_time = |trainer: &mut Trainer| -> Result<f64> {
        let t = trained_for();
        if trainer.workers().is_parallel() && spec.time_limit.is_some() {
            trainer.agree(t)
        } else {
            Ok(t)
        }
    };
    let mut writer = CheckpointWriter::default();
    // The CSV is flushed first: its rows up to the checkpoint's step are on file with it.
    let mut save = |trainer: &mut Trainer, csv: &mut Box<dyn Write>| -> Result<()> {
        csv.flush().map_err(io_err(&csv_path))?;
        let mut state = trainer.state()?;
        state.train_seconds = trained_for();
        writer.save(&spec.out, state, &spec.run_json)
    };
    let total = spec.steps;
    let timed_only = total >= UNTIL_TIME_LIMIT && spec.time_limit.is_some();
    let first_step = trainer.step;
    let mut progress =
        super::progress::Progress::new((!timed_only).then_some(total), spec.time_limit, first_step);
    let mut out = Outcome::starting_at(first_step);
    let every = hooks.heldout.as_ref().map_or(0, |h| h.every);
    let mut heldout = hooks
        .heldout
        .take()
        .map(|h| HeldoutLog::open(h, &spec.out, trainer.step))
        .transpose()?;
    let mut guard = Guard::new(trainer.optimizer.config.guard).filter(|_| every > 0);

    while trainer.step < total {
        let now = agreed_time(trainer)?;
        if spec.time_limit.is_some_and(|t| now >= t) {
            out.stopped_by_time = true;
            break;
        }
        if let Some(t) = spec.time_limit {
            trainer.set_schedule_progress(now / t);
        }
        (hooks.before_step)(trainer)?;
        let r = match trainer.step() {
            Ok(r) => r,
            Err(e @ (SpinError::Cholesky { .. } | SpinError::NonFinite { .. })) => {
                progress.abandon();
                eprintln!("training stopped at step {}: {e}", trainer.step + 1);
                out.failure = Some(e);
                break;
            }
            Err(e) => {
                progress.abandon();
                let _ = csv.flush();
                return Err(e);
            }
        };
        writeln!(csv, "{}", (hooks.csv_row)(&r)).map_err(io_err(&csv_path))?;
        progress.update(r.step, trained_for(), || (hooks.status)(&r));
        if let Some(h) = heldout.as_mut().filter(|_| r.step.is_multiple_of(every)) {
            let values = h.record(trainer, &mut out)?;
            if let Some(g) = guard.as_mut() {
                if let Some(b) = g.check(trainer, &values)? {
                    eprintln!(
                        "divergence guard: the held-out curve rose {:.2}× its spread above its best at step {}; back to step {} at {}× the learning rate",
                        b.rise, b.step, b.to_step, b.lr_scale
                    );
                    // The run as kept: both CSVs and the curve end at the step it went back to.
                    csv.flush().map_err(io_err(&csv_path))?;
                    csv = open_rows(&csv_path, &spec.csv_header, b.to_step)?;
                    h.cut_back(b.to_step, &mut out)?;
                    // The checkpoint on disk may be past it: a run killed now resumes from here.
                    if spec.checkpoint_every > 0 {
                        save(trainer, &mut csv)?;
                    }
                }
            }
        }
        if spec.checkpoint_every > 0 && r.step % spec.checkpoint_every == 0 {
            save(trainer, &mut csv)?;
        }
    }
    if let Some(h) = heldout
        .as_mut()
        .filter(|_| out.heldout_steps.last() != Some(&trainer.step) && trainer.step > first_step)
    {
        h.record(trainer, &mut out)?;
    }
    out.rollbacks = guard.map(|g| g.rollbacks).unwrap_or_default();
    progress.finish();
    out.wall = start.elapsed().as_secs_f64();
    save(trainer, &mut csv)?;
    writer.wait()?;
    trainer.report_replicas()?;
    Ok(out)
}

/// The health columns every run's `eigenvalues.csv` ends with, in the order of
/// [`health_values`]: tr Σ̂, cond Σ̂, the largest importance weight's share of the minibatch,
/// ‖g‖ and the gauge term's share of G_Σ.
pub const HEALTH_COLUMNS: [&str; 5] = [
    "sigma_trace",
    "sigma_hat_condition",
    "max_weight_share",
    "grad_norm",
    "gauge_share",
];

/// A step's health values in the order of [`HEALTH_COLUMNS`].
pub fn health_values(h: &crate::spin::trainer::StepHealth) -> [f64; 5] {
    [
        h.sigma_trace,
        h.sigma_hat_condition,
        h.max_weight_share,
        h.grad_norm,
        h.gauge_share,
    ]
}

/// A CSV row of numbers: the step, then each value with `{}` (`precision` None) or `{:.P e}`.
pub fn csv_row<'a>(
    step: u64,
    values: impl IntoIterator<Item = &'a f64>,
    sci: Option<usize>,
) -> String {
    let mut line = step.to_string();
    for v in values {
        match sci {
            None => line.push_str(&format!(",{v}")),
            Some(p) => line.push_str(&format!(",{v:.p$e}")),
        }
    }
    line
}

/// The rows of a numeric CSV written by this loop (`eigenvalues.csv`, `heldout.csv`): steps and
/// the values after the step column (rows that do not parse are skipped).
pub fn read_rows(path: &Path) -> (Vec<u64>, Vec<Vec<f64>>) {
    let mut steps = Vec::new();
    let mut rows = Vec::new();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines().skip(1) {
        let mut cells = line.split(',');
        let Some(step) = cells.next().and_then(|c| c.parse::<u64>().ok()) else {
            continue;
        };
        let values: Option<Vec<f64>> = cells.map(|c| c.parse().ok()).collect();
        if let Some(v) = values {
            steps.push(step);
            rows.push(v);
        }
    }
    (steps, rows)
}

/// The CSV header of [`eigen_hooks`]: per step the loss, diag Λ and its EMA.
pub fn eigen_csv_header(n: usize) -> String {
    let mut h = vec!["step".to_string(), "loss".to_string()];
    h.extend((0..n).map(|k| format!("lambda_{k}")));
    h.extend((0..n).map(|k| format!("lambda_ema_{k}")));
    h.extend(HEALTH_COLUMNS.iter().map(|c| c.to_string()));
    h.join(",")
}

/// Hooks that do nothing before a step and write the loss, diag Λ, its EMA and the step's health
/// per step; the
/// status shows the EMA from feature `skip` on (past a constant first eigenfunction).
pub fn eigen_hooks(heldout: Option<Heldout<'_>>, skip: usize) -> Hooks<'_> {
    Hooks {
        heldout,
        before_step: Box::new(|_| Ok(())),
        csv_row: Box::new(|r| {
            let health = health_values(&r.health);
            let values = std::iter::once(&r.loss)
                .chain(&r.eigenvalues)
                .chain(&r.eigenvalues_ema)
                .chain(&health);
            csv_row(r.step, values, Some(6))
        }),
        status: Box::new(move |r| {
            let shown: Vec<String> = r.eigenvalues_ema[skip.min(r.eigenvalues_ema.len())..]
                .iter()
                .map(|v| format!("{v:.4}"))
                .collect();
            format!("loss {:.5}  λ [{}]", r.loss, shown.join(", "))
        }),
    }
}

/// The EMA columns of a CSV written with [`eigen_csv_header`] for `n` outputs, from output
/// `skip` on: the steps and one curve per output.
pub fn eigen_ema_curves(path: &Path, n: usize, skip: usize) -> (Vec<u64>, Vec<Vec<f64>>) {
    let (steps, rows) = read_rows(path);
    let mut kept = Vec::new();
    let mut curves = vec![Vec::new(); n];
    for (s, r) in steps.iter().zip(&rows) {
        if r.len() > 2 * n {
            kept.push(*s);
            for (k, c) in curves.iter_mut().enumerate() {
                c.push(r[1 + n + k]);
            }
        }
    }
    (kept, curves.into_iter().skip(skip).collect())
}
