//! `cargo bench`: whole SpIN training steps per second for the named configurations.

use std::sync::Arc;

use spectral_inference::experiments::bench::{configs, run};
use spectral_inference::gpu::{context::request_from_env, GpuContext};

fn main() {
    let ctx = match GpuContext::new(&request_from_env()) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!("adapter: {}", ctx.adapter().name);
    for config in configs() {
        if !filter.is_empty() && !filter.iter().any(|f| config.name.contains(f.as_str())) {
            continue;
        }
        match run(ctx.clone(), &config, 10, 20, 5.0, false) {
            Ok(r) => {
                println!(
                    "{:<26} {:>9.2} steps/s  {:>9.2} ms/step  ({} steps)  {:.1} MiB  {:.2} GFLOP/s",
                    r.name,
                    r.steps_per_second,
                    r.ms_per_step,
                    r.steps,
                    r.gpu_memory_bytes as f64 / (1u64 << 20) as f64,
                    r.gflops
                );
                if let Some(k) = r.kernels {
                    for t in k {
                        println!("    {:<24} {:>8.3} ms", t.label, t.ms);
                    }
                }
            }
            Err(e) => {
                eprintln!("{}: error: {e}", config.name);
                std::process::exit(1);
            }
        }
    }
}
