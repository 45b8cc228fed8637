//! The evaluation's Monte Carlo standard errors (host only, no adapter needed).

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use spectral_inference::spin::host::{ritz_std_errors, ritz_values, step_matrices};

fn noisy(base: &DMatrix<f64>, eps: f64, rng: &mut ChaCha8Rng) -> DMatrix<f64> {
    let n = base.nrows();
    let e = DMatrix::from_fn(n, n, |_, _| {
        let v: f64 = StandardNormal.sample(rng);
        v
    });
    base + (&e + e.transpose()) * (0.5 * eps)
}

#[test]
fn ritz_std_errors_match_the_spread_of_repeated_evaluations() {
    let sigma0 = DMatrix::from_row_slice(3, 3, &[1.0, 0.2, 0.0, 0.2, 1.5, 0.1, 0.0, 0.1, 0.8]);
    let pi0 = DMatrix::from_row_slice(3, 3, &[-1.0, 0.3, 0.1, 0.3, 2.0, 0.0, 0.1, 0.0, 3.0]);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (reps, chunks) = (400, 32);
    let mut values = Vec::new();
    let mut errors = [0.0; 3];
    for _ in 0..reps {
        let cs: Vec<_> = (0..chunks)
            .map(|_| (noisy(&sigma0, 0.05, &mut rng), noisy(&pi0, 0.1, &mut rng)))
            .collect();
        let s = cs.iter().fold(DMatrix::zeros(3, 3), |a, c| a + &c.0) / chunks as f64;
        let p = cs.iter().fold(DMatrix::zeros(3, 3), |a, c| a + &c.1) / chunks as f64;
        values.push(ritz_values(&step_matrices(&s, &p).unwrap().lambda));
        for (e, v) in errors.iter_mut().zip(ritz_std_errors(&s, &p, &cs).unwrap()) {
            *e += v / reps as f64;
        }
    }
    for k in 0..3 {
        let mean = values.iter().map(|v| v[k]).sum::<f64>() / reps as f64;
        let spread =
            (values.iter().map(|v| (v[k] - mean).powi(2)).sum::<f64>() / (reps - 1) as f64).sqrt();
        assert!(
            (errors[k] / spread - 1.0).abs() < 0.15,
            "λ_{k}: mean standard error {} vs spread of repeated evaluations {spread}",
            errors[k]
        );
    }
    // One chunk: no error estimate.
    assert!(
        ritz_std_errors(&sigma0, &pi0, &[(sigma0.clone(), pi0.clone())])
            .unwrap()
            .is_empty()
    );
}
