//! The final evaluation to a target standard error, and how its eigenvalues compare with exact
//! ones.

use super::SchrodingerConfig;
use crate::error::Result;

/// The largest standard error relative to its eigenvalue (∞ when there are none to judge).
pub fn max_relative_std_error(eval: &crate::spin::Evaluation) -> f64 {
    if eval.eigenvalue_std_errors.is_empty() {
        return f64::INFINITY;
    }
    eval.eigenvalues
        .iter()
        .zip(&eval.eigenvalue_std_errors)
        .map(|(l, se)| se / l.abs().max(1e-300))
        .fold(0.0, f64::max)
}

/// The final evaluation (with [`SchrodingerConfig::evaluation_laplacian`]): `eval_samples` fresh points, then (doubling at least, aiming at the
/// sample size the measured errors call for) more, until every eigenvalue's standard error is
/// below `eval_target` of its value or `eval_max_samples` is reached.
pub fn evaluate_to_target(
    trainer: &mut crate::spin::Trainer,
    cfg: &SchrodingerConfig,
) -> Result<crate::spin::Evaluation> {
    let mut samples = cfg.eval_samples;
    let ctx = trainer.context().clone();
    // Built once: an expression potential compiles a WGSL pipeline.
    let operator = cfg.operator(&ctx, cfg.evaluation_laplacian())?;
    loop {
        let eval =
            trainer.evaluate_with(operator.clone(), samples, 8192, cfg.train.seed ^ 0xE7A1)?;
        let worst = max_relative_std_error(&eval);
        if !crate::experiments::progress::quiet() {
            eprintln!(
                "evaluation pass: {} points, largest standard error {:.4} % of its eigenvalue (target {:.4} %)",
                eval.samples,
                100.0 * worst,
                100.0 * cfg.eval_target
            );
        }
        if cfg.eval_target <= 0.0
            || worst <= cfg.eval_target
            || samples >= cfg.eval_max_samples
            || !worst.is_finite()
        {
            return Ok(eval);
        }
        let want = samples as f64 * (worst / cfg.eval_target).powi(2) * 1.1;
        samples = (want.min(cfg.eval_max_samples as f64) as usize)
            .max(2 * samples)
            .min(cfg.eval_max_samples);
    }
}

/// The indices k whose learned value lies more than two standard errors below the exact one: a
/// variational estimate cannot, so these flag Monte Carlo error (or a wrong reference).
pub fn below_exact(learned: &[f64], std_errors: &[f64], exact: &[f64]) -> Vec<usize> {
    let mut l: Vec<(f64, f64)> = learned
        .iter()
        .zip(std_errors.iter().chain(std::iter::repeat(&0.0)))
        .map(|(a, b)| (*a, *b))
        .collect();
    l.sort_by(|a, b| a.0.total_cmp(&b.0));
    l.iter()
        .zip(exact)
        .enumerate()
        .filter(|(_, ((v, se), e))| *v < *e - 2.0 * se)
        .map(|(k, _)| k)
        .collect()
}

/// Relative errors |a − b|/|b| of ascending `learned` against ascending `exact`.
pub fn relative_errors(learned: &[f64], exact: &[f64]) -> Vec<f64> {
    let mut l = learned.to_vec();
    l.sort_by(f64::total_cmp);
    l.iter()
        .zip(exact)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1e-300))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn values_below_exact_are_flagged() {
        // Sorted before comparing: −0.0628 is 1.5 standard errors below −0.0625, within 2.
        let learned = [-0.0624, -0.0628, -0.2497];
        let se = [0.0002, 0.0002, 0.0005];
        let exact = [-0.25, -0.0625, -0.0625];
        assert!(below_exact(&learned, &se, &exact).is_empty());
        // −0.1130 is 3.8 standard errors below −1/9.
        let learned = [-1.0, -0.1130, -0.1110];
        let se = [0.001, 0.0005, 0.0005];
        let exact = [-1.0, -1.0 / 9.0, -1.0 / 9.0];
        assert_eq!(below_exact(&learned, &se, &exact), vec![1]);
    }
}
