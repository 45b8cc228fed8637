//! `spin info`: the adapters, best first, and the limits that matter.

use anyhow::{bail, Result};

use super::Cli;
use spectral_inference::gpu::list_adapters;

/// Lists the adapters the global options select.
pub fn run(cli: &Cli) -> Result<()> {
    let adapters = list_adapters(&super::adapter_request(cli));
    if adapters.is_empty() {
        bail!(spectral_inference::SpinError::NoAdapter(String::new()));
    }
    for (i, a) in adapters.iter().enumerate() {
        println!(
            "[{i}] {}{}",
            a.name,
            if i == 0 { "   (default)" } else { "" }
        );
        println!(
            "    backend {}, type {}, driver {}",
            a.backend, a.device_type, a.driver
        );
        println!(
            "    max storage binding {} MiB, max buffer {} MiB, {} storage buffers/stage",
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_storage_buffers_per_shader_stage
        );
        println!(
            "    {} invocations/workgroup, {} workgroups/dimension, timestamp queries: {}",
            a.max_compute_invocations_per_workgroup,
            a.max_compute_workgroups_per_dimension,
            if a.timestamp_queries { "yes" } else { "no" }
        );
    }
    Ok(())
}
