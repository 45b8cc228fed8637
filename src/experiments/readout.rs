//! The one rule by which every front end's read-out refit (Rayleigh–Ritz on the last hidden
//! layer's span, after training) replaces the trained read-out or is discarded.

/// Whether a refitted read-out replaces the trained one, given each one's validation sum — the
/// sum of its Ritz values (Schrödinger, graphs) or of its held-out Δ-values (video), the quantity
/// training minimises — on data neither was fitted on. The refit wins only when it is strictly
/// lower, or when the trained network has no finite sum (its outputs span fewer than N
/// directions); a refit without a finite sum never wins. So a network already better than the
/// fit's noise is left as it was.
pub fn refit_wins(trained: f64, refit: f64) -> bool {
    refit_wins_by(trained, refit, 0.0)
}

/// [`refit_wins`] where the validation sums are noisy: the refit must be lower by more than
/// `margin` (a multiple of the standard error of the two sums' difference; a negative or NaN
/// margin counts as none).
pub fn refit_wins_by(trained: f64, refit: f64, margin: f64) -> bool {
    refit.is_finite() && (!trained.is_finite() || refit < trained - margin.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::{refit_wins, refit_wins_by};

    #[test]
    fn the_refit_wins_only_when_strictly_lower_or_the_trained_network_has_no_sum() {
        assert!(refit_wins(-1.0, -1.1));
        assert!(!refit_wins(-1.1, -1.0));
        assert!(!refit_wins(-1.0, -1.0));
        assert!(refit_wins(f64::NAN, 0.3));
        assert!(!refit_wins(0.3, f64::NAN));
        assert!(!refit_wins(f64::NAN, f64::NAN));
    }

    #[test]
    fn a_margin_keeps_the_trained_network_unless_the_refit_is_lower_by_more() {
        assert!(!refit_wins_by(1.0, 0.99, 0.02));
        assert!(refit_wins_by(1.0, 0.97, 0.02));
        assert!(refit_wins_by(1.0, 0.99, f64::NAN));
        assert!(refit_wins_by(1.0, 0.99, -5.0));
        assert!(refit_wins_by(f64::NAN, 0.99, 0.02));
        assert!(!refit_wins_by(1.0, f64::NAN, 0.0));
    }
}
