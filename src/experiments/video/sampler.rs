//! Clips of stacked-frame inputs drawn from a video, raw or whitened.

use std::ops::Range;
use std::sync::Arc;

use super::super::sfa::LinearFeatures;
use crate::data::video::{input_at, ClipSource, Video};
use crate::operators::samplers::Sampler;

/// Draws whole clips of stacked-frame inputs from a video.
pub struct ClipSampler {
    video: Arc<Video>,
    source: ClipSource,
    dim: usize,
    /// Whitened inputs, one row of `dim` per input start frame, when the network reads those.
    table: Option<Vec<f32>>,
}

impl ClipSampler {
    /// Clips of `source` from `video`.
    pub fn new(video: Arc<Video>, source: ClipSource) -> Self {
        let dim = video.pixels() * source.frames_per_input;
        Self {
            video,
            source,
            dim,
            table: None,
        }
    }

    /// Clips of `source` from `video`, each input replaced by its whitened coordinates under
    /// `whitening` (computed once here for every input start of the video).
    pub fn whitened(video: Arc<Video>, source: ClipSource, whitening: &LinearFeatures) -> Self {
        let k = source.frames_per_input;
        let starts: Vec<usize> = (0..(video.len() + 1).saturating_sub(k)).collect();
        let table = project(&video, &starts, k, whitening)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        Self {
            dim: whitening.output_dim(),
            video,
            source,
            table: Some(table),
        }
    }
}

impl Sampler for ClipSampler {
    fn dim(&self) -> usize {
        self.dim
    }
    /// `count` inputs (a whole number of clips, clip-major) and unit weights.
    fn sample(&self, rng: &mut dyn rand::RngCore, count: usize) -> (Vec<f64>, Vec<f64>) {
        let clips = count / self.source.clip_len;
        let mut out = Vec::with_capacity(count * self.dim);
        for s in self.source.sample_starts(rng, clips) {
            for i in 0..self.source.clip_len {
                match &self.table {
                    Some(table) => out.extend(
                        table[(s + i) * self.dim..(s + i + 1) * self.dim]
                            .iter()
                            .map(|&v| v as f64),
                    ),
                    None => input_at(&self.video, s + i, self.source.frames_per_input, &mut out),
                }
            }
        }
        (out, vec![1.0; count])
    }
}

/// `whitening` applied to the inputs starting at `starts` (rows × its output dimension), in
/// chunks on all cores.
pub(super) fn project(
    video: &Video,
    starts: &[usize],
    k: usize,
    whitening: &LinearFeatures,
) -> Vec<f64> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = starts.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = starts
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(part.len() * whitening.output_dim());
                    for chunk in part.chunks(256) {
                        let mut x = Vec::with_capacity(chunk.len() * video.pixels() * k);
                        for &t in chunk {
                            input_at(video, t, k, &mut x);
                        }
                        out.extend(whitening.apply(&x));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a projection thread panicked"))
            .collect()
    })
}

/// The inputs of `ranges` in order, as (input start frames, segments of consecutive inputs).
pub(super) fn sequence_inputs(
    ranges: &[Range<usize>],
    k: usize,
) -> (Vec<usize>, Vec<Range<usize>>) {
    let mut starts = Vec::new();
    let mut segments = Vec::new();
    for r in ranges {
        let first = starts.len();
        starts.extend(r.start..(r.end + 1).saturating_sub(k).max(r.start));
        if starts.len() > first {
            segments.push(first..starts.len());
        }
    }
    (starts, segments)
}
