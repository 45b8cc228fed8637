//! The read-out refit: Rayleigh–Ritz on the last hidden layer's span, kept only when it wins on
//! a validation sample.

use super::{LaplacianKind, SchrodingerConfig};
use crate::error::Result;

/// The read-out refit's cut-off: directions of the basis's (correlation-scaled) Gram matrix
/// below this fraction of its largest eigenvalue are dropped. The basis values come from the
/// GPU in f32 (relative rounding ≈ 6e−8), so directions much smaller than that are noise.
pub const READOUT_REL_TOL: f64 = 1e-6;

/// What [`readout_refit`] did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReadoutRefit {
    /// Why the refit could not be made (the trained network was kept), if it could not.
    pub error: Option<String>,
    /// The Ritz values on the fitting sample (biased low by the fit).
    pub fit_values: Vec<f64>,
    /// Σ of the Ritz values of the refitted network on the validation sample.
    pub validation_refit: f64,
    /// The same for the trained network, on the same points.
    pub validation_trained: f64,
    /// Whether the refitted read-out was kept (lower Σλ on the validation sample).
    pub kept: bool,
    /// Wall time of the fit and the validation.
    pub seconds: f64,
}

/// [`crate::spin::Trainer::refit_readout`] on `eval_samples` points of its own (weak form),
/// kept only when the sum of its Ritz values — the trace the SpIN loss minimises — beats the
/// trained network's on a validation sample of a quarter that size (the same points for both,
/// independent of the fit's and of the final evaluation's), so that a network already better
/// than the fit's noise is left as it was.
pub fn readout_refit(
    trainer: &mut crate::spin::Trainer,
    cfg: &SchrodingerConfig,
) -> Result<ReadoutRefit> {
    let start = std::time::Instant::now();
    let ctx = trainer.context().clone();
    let trained = trainer.params.clone();
    let fit_values = trainer.refit_readout(
        cfg.operator(&ctx, LaplacianKind::Weak)?,
        cfg.eval_samples,
        8192,
        cfg.train.seed ^ 0x2EAD,
        READOUT_REL_TOL,
    )?;
    let operator = cfg.operator(&ctx, cfg.evaluation_laplacian())?;
    let validation = (cfg.eval_samples / 4).max(8192);
    let seed = cfg.train.seed ^ 0x7A11;
    let trace = |t: &mut crate::spin::Trainer| -> Result<f64> {
        Ok(t.evaluate_with(operator.clone(), validation, 8192, seed)?
            .eigenvalues
            .iter()
            .sum())
    };
    let validation_refit = trace(trainer)?;
    let refitted = std::mem::replace(&mut trainer.params, trained);
    let validation_trained = trace(trainer)?;
    let kept = crate::experiments::readout::refit_wins(validation_trained, validation_refit);
    if kept {
        trainer.params = refitted;
    }
    Ok(ReadoutRefit {
        error: None,
        fit_values,
        validation_refit,
        validation_trained,
        kept,
        seconds: start.elapsed().as_secs_f64(),
    })
}
