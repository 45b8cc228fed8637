//! Per-kernel GPU times of one training step, from timestamp queries (`spin bench`).

use super::Engine;
use crate::error::Result;

/// Per-kernel GPU time of one training step, from timestamp queries.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelTime {
    /// Kernel label (kernel and layer).
    pub label: String,
    /// Milliseconds.
    pub ms: f64,
}

impl Engine {
    /// Runs statistics + gradient once per dispatch in its own pass with timestamps, returning
    /// per-kernel times; `None` when the adapter has no timestamp queries.
    pub fn profile(
        &self,
        g_pi: &[f64],
        g_sigma: &[f64],
        beta: f64,
    ) -> Result<Option<Vec<KernelTime>>> {
        if !self.ctx.has_timestamps() {
            return Ok(None);
        }
        let backward = self.backward()?;
        // Make sure the step buffer holds something sensible, then time each dispatch.
        self.gradient(g_pi, g_sigma, beta)?;
        let list: Vec<_> = self.forward.iter().chain(backward.iter()).collect();
        let count = (2 * list.len()) as u32;
        let device = &self.ctx.device;
        let qs = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kernel timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolve = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: count as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = self.ctx.staging("timestamps_staging", 2 * count as usize);
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("profile"),
        });
        for (i, d) in list.iter().enumerate() {
            for (buf, m) in &d.copies {
                m.encode_copy(&mut enc, buf);
            }
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&d.label),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &qs,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.groups.0, d.groups.1, d.groups.2);
        }
        enc.resolve_query_set(&qs, 0..count, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &staging, 0, count as u64 * 8);
        self.ctx.queue.submit([enc.finish()]);
        let raw = self.ctx.read_staging(&staging, 2 * count as usize)?;
        let ticks: Vec<u64> = raw
            .chunks(2)
            .map(|c| (c[0].to_bits() as u64) | ((c[1].to_bits() as u64) << 32))
            .collect();
        let period = self.ctx.queue.get_timestamp_period() as f64;
        Ok(Some(
            list.iter()
                .enumerate()
                .map(|(i, d)| KernelTime {
                    label: d.label.clone(),
                    ms: ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period * 1e-6,
                })
                .collect(),
        ))
    }
}
