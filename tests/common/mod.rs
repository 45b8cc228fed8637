#![allow(dead_code)]
use std::sync::{Arc, OnceLock};

use spectral_inference::gpu::{context::request_from_env, GpuContext};

/// The shared GPU context. Fails loudly when there is no adapter: CI installs lavapipe.
pub fn ctx() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new(&request_from_env()) {
        Ok(c) => Arc::new(c),
        Err(e) => panic!("GPU tests need an adapter: {e}"),
    })
    .clone()
}

/// |gpu − cpu| ≤ atol + rtol·|cpu|, printing the first failing index and both values.
pub fn assert_close(name: &str, gpu: &[f32], cpu: &[f64], rtol: f64, atol: f64) {
    assert_eq!(
        gpu.len(),
        cpu.len(),
        "{name}: length {} vs {}",
        gpu.len(),
        cpu.len()
    );
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let err = (g as f64 - c).abs();
        let allowed = atol + rtol * c.abs();
        assert!(
            err <= allowed,
            "{name}[{i}]: gpu {g} vs cpu {c} (|diff| {err:.3e} > {allowed:.3e})"
        );
        if err > worst.1 {
            worst = (i, err);
        }
    }
}

/// Largest magnitude, to scale absolute tolerances of long reductions.
pub fn scale(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30)
}
