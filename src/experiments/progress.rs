//! One progress reporter for every long command: a bar on a terminal; otherwise (a log file,
//! `nohup`, CI) a line every 30 s or 5 % of the run, whichever comes first, with the step,
//! elapsed time, time left, steps/s and the current estimates; `--quiet` for neither.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Turns every progress bar and progress line off (`--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether progress is off.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Seconds between log lines when there is no terminal.
pub const LOG_SECONDS: f64 = 30.0;

/// `s` seconds as `1h02m03s`, `2m03s` or `4.5s`.
pub fn duration(s: f64) -> String {
    let s = s.max(0.0);
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let t = s.round() as u64;
    if t < 3600 {
        format!("{}m{:02}s", t / 60, t % 60)
    } else {
        format!("{}h{:02}m{:02}s", t / 3600, (t / 60) % 60, t % 60)
    }
}

/// Progress of a loop over steps (or any countable work).
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    /// The last step, if known (steps-bound runs).
    total: Option<u64>,
    /// The time limit, if any (seconds over every invocation).
    time_limit: Option<f64>,
    first: u64,
    start: Instant,
    last_line: Instant,
    last_fraction: f64,
    lines: bool,
}

impl Progress {
    /// Progress from step `first` towards `total` and/or a time limit.
    pub fn new(total: Option<u64>, time_limit: Option<f64>, first: u64) -> Self {
        let quiet = quiet();
        let bar = (!quiet).then(|| {
            let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
            bar.set_style(
                indicatif::ProgressStyle::with_template(if total.is_some() {
                    "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec} {msg}"
                } else {
                    "{pos} steps [{elapsed_precise}] {per_sec} {msg}"
                })
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_position(first);
            bar
        });
        let lines = !quiet && bar.as_ref().is_some_and(|b| b.is_hidden());
        Self {
            bar: bar.filter(|b| !b.is_hidden()),
            total,
            time_limit,
            first,
            start: Instant::now(),
            last_line: Instant::now(),
            last_fraction: 0.0,
            lines,
        }
    }

    /// Whether this reporter writes log lines (no terminal, not quiet).
    pub fn logs_lines(&self) -> bool {
        self.lines
    }

    /// The share of the run done at `step` after `trained` seconds (the larger of the two).
    fn fraction(&self, step: u64, trained: f64) -> f64 {
        let by_steps = self.total.map_or(0.0, |t| step as f64 / t.max(1) as f64);
        let by_time = self.time_limit.map_or(0.0, |t| trained / t);
        by_steps.max(by_time).min(1.0)
    }

    /// Reports `step` after `trained` seconds of training (every invocation); `status` gives
    /// the current estimates, and is only called when they are shown.
    pub fn update(&mut self, step: u64, trained: f64, status: impl FnOnce() -> String) {
        if let Some(bar) = &self.bar {
            bar.set_position(step);
            if step.is_multiple_of(25) {
                bar.set_message(status());
            }
            return;
        }
        if !self.lines {
            return;
        }
        let fraction = self.fraction(step, trained);
        let due = self.last_line.elapsed() >= Duration::from_secs_f64(LOG_SECONDS)
            || fraction >= self.last_fraction + 0.05
            || self.total == Some(step);
        if !due {
            return;
        }
        self.last_fraction = fraction;
        self.last_line = Instant::now();
        let elapsed = self.start.elapsed().as_secs_f64();
        let rate = (step - self.first) as f64 / elapsed.max(1e-9);
        let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
        let by_steps = self.fraction(step, 0.0);
        let left = match (self.time_limit, self.total) {
            (Some(t), _) if trained / t >= by_steps => format!("{} left", duration(t - trained)),
            (_, Some(t)) if rate > 0.0 => format!("ETA {}", duration((t - step) as f64 / rate)),
            _ => String::new(),
        };
        eprintln!(
            "step {step:>8}{of}  {:>3.0} %  {} elapsed  {left}  {rate:.1} steps/s  {}",
            100.0 * fraction,
            duration(elapsed),
            status()
        );
    }

    /// Leaves the bar on the screen where it stopped (a failed step).
    pub fn abandon(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(4.54), "4.5s");
        assert_eq!(duration(123.0), "2m03s");
        assert_eq!(duration(3723.0), "1h02m03s");
        assert_eq!(duration(-1.0), "0.0s");
    }
}
