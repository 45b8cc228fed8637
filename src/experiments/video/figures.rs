//! The figures of a video run: heatmaps over ball positions (Fig. 2a), the most and least
//! activating inputs (Fig. 2b) and eigenpurposes (Fig. 4).

use std::ops::Range;
use std::path::Path;

use super::evaluate::features_of;
use super::sampler::sequence_inputs;
use super::{VideoConfig, VideoEvaluation, VideoModel};
use crate::data::video::Video;
use crate::error::{Result, SpinError};
use crate::experiments::plot::{annotate, Label};

/// Fig. 2a: per learned eigenfunction, its mean held-out activation when a ball is in each cell
/// of a 16 × 16 grid over the box (red positive, blue negative; the sign is arbitrary).
pub(super) fn heatmaps(
    model: &VideoModel,
    cfg: &VideoConfig,
    video: &Video,
    ranges: &[Range<usize>],
    path: &Path,
) -> Result<()> {
    let Some((balls, pos)) = &video.positions else {
        return Ok(());
    };
    let g = 16;
    let k = cfg.frames_per_input;
    let n_out = model.trainer.problem().spec.outputs;
    let skip = cfg.constant_first as usize;
    let (starts, _) = sequence_inputs(ranges, k);
    let u = features_of(video, &starts, k, |x| model.outputs(x))?;
    let mut sums = vec![vec![0.0; g * g]; cfg.neig];
    let mut counts = vec![0usize; g * g];
    for (i, &t) in starts.iter().enumerate() {
        // The ball positions at the input's last frame.
        let f = t + k - 1;
        for b in 0..*balls {
            let x = pos[(f * balls + b) * 2] as f64;
            let y = pos[(f * balls + b) * 2 + 1] as f64;
            let cell =
                ((y * g as f64) as usize).min(g - 1) * g + ((x * g as f64) as usize).min(g - 1);
            counts[cell] += 1;
            for (j, s) in sums.iter_mut().enumerate() {
                s[cell] += u[i * n_out + skip + j];
            }
        }
    }
    let values: Vec<Vec<f64>> = sums
        .into_iter()
        .map(|s| {
            let mean: Vec<f64> = s
                .iter()
                .zip(&counts)
                .map(|(v, &c)| if c > 0 { v / c as f64 } else { 0.0 })
                .collect();
            // Centre over the visited cells so that the colour shows where it is high or low.
            let visited: Vec<f64> = mean
                .iter()
                .zip(&counts)
                .filter(|(_, &c)| c > 0)
                .map(|(v, _)| *v)
                .collect();
            let mid = visited.iter().sum::<f64>() / visited.len().max(1) as f64;
            mean.iter()
                .zip(&counts)
                .map(|(v, &c)| if c > 0 { v - mid } else { 0.0 })
                .collect()
        })
        .collect();
    let labels: Vec<String> = (0..cfg.neig)
        .map(|j| format!("feature {}", j + 1))
        .collect();
    // The grid is the unit box [0, 1]²; the panels draw it on [−1, 1]² with ticks relabelled.
    crate::experiments::plot::eigenfunction_panels(
        path,
        &values,
        g,
        1.0,
        &crate::experiments::plot::Panels {
            title: "mean held-out activation of each learned feature by ball position (Fig. 2a)",
            labels: &labels,
            axes: (
                "ball x: −1 left wall … 1 right wall",
                "ball y: 1 top … −1 bottom",
            ),
            colour: "activation − its mean (per panel, / max)",
        },
    )
}

/// Pixels per frame pixel in the figures (at least 2, frames drawn about 96 pixels wide).
fn zoom(video: &Video) -> u32 {
    (96 / video.width.max(1)).max(2) as u32
}

/// Fig. 2b: per learned eigenfunction (rows), the held-out inputs that most (left) and least
/// (right) activate it, the input's first frame in red and its last in blue (black where both).
pub(super) fn extremes(
    video: &Video,
    cfg: &VideoConfig,
    eval: &VideoEvaluation,
    path: &Path,
) -> Result<()> {
    let n = cfg.neig;
    if eval.starts.is_empty() {
        return Ok(());
    }
    let z = zoom(video);
    let (w, h) = (video.width as u32 * z, video.height as u32 * z);
    let gap = 4;
    let mut img = image::RgbImage::from_pixel(
        2 * w + 3 * gap,
        n as u32 * (h + gap) + gap,
        image::Rgb([255, 255, 255]),
    );
    let px = video.pixels();
    let k = cfg.frames_per_input;
    for j in 0..n {
        let col = |i: usize| eval.features[i * n + j];
        let idx: Vec<usize> = (0..eval.starts.len()).collect();
        let hi = *idx
            .iter()
            .max_by(|&&a, &&b| col(a).total_cmp(&col(b)))
            .unwrap_or(&0);
        let lo = *idx
            .iter()
            .min_by(|&&a, &&b| col(a).total_cmp(&col(b)))
            .unwrap_or(&0);
        for (c, &i) in [hi, lo].iter().enumerate() {
            let t = eval.starts[i];
            let (first, last) = (
                &video.frames[t * px..(t + 1) * px],
                &video.frames[(t + k - 1) * px..(t + k) * px],
            );
            let (x0, y0) = (gap + c as u32 * (w + gap), gap + j as u32 * (h + gap));
            for y in 0..h {
                for x in 0..w {
                    let p = (y / z) as usize * video.width + (x / z) as usize;
                    let (r, b) = (first[p], last[p]);
                    // White paper: the first frame's ink red, the last frame's blue.
                    img.put_pixel(
                        x0 + x,
                        y0 + y,
                        image::Rgb([255 - b, 255 - r.max(b), 255 - r]),
                    );
                }
            }
        }
    }
    let (left, top) = (150u32, 64u32);
    let mut labels: Vec<Label> = vec![
        (
            8,
            6,
            "held-out inputs that most and least activate each learned feature (Fig. 2b)".into(),
            16,
        ),
        (
            8,
            26,
            format!(
                "first frame of the input red, last frame (t + {}) blue, both black",
                k - 1
            ),
            13,
        ),
    ];
    // Small frames: one word per column, and the word `activation` to their left.
    let (hi, lo) = if w >= 150 {
        ("largest activation", "smallest activation")
    } else {
        labels.push((8, 46, "activation:".into(), 13));
        ("largest", "smallest")
    };
    labels.push(((left + gap) as i32, 46, hi.into(), 13));
    labels.push(((left + 2 * gap + w) as i32, 46, lo.into(), 13));
    for j in 0..n {
        let y = (top + gap + j as u32 * (h + gap) + h / 2) as i32 - 14;
        labels.push((8, y, format!("feature {}", j + 1), 14));
        if let Some(d) = eval.delta_values.get(j) {
            labels.push((8, y + 16, format!("(Δ-value {}: {d:.4})", j + 1), 11));
        }
    }
    // Wide enough for the title whatever the frames' size.
    let size = ((img.width() + left + 8).max(640), img.height() + top);
    save_rgb(&annotate(&img, size, (left, top), &labels)?, path)
}

fn save_rgb(img: &image::RgbImage, path: &Path) -> Result<()> {
    if !crate::spin::parallel::is_writer() {
        return Ok(());
    }
    img.save(path).map_err(|e| SpinError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Fig. 4 (C.3): per eigenfunction (columns), the mean of the 100 held-out inputs with the
/// largest positive (top row) and largest negative (second row) activation, frames averaged;
/// below, the same for linear successor features' eigenpurposes (the paper's comparison) and
/// the leading principal components of the pixels.
pub(super) fn eigenpurposes(
    video: &Video,
    cfg: &VideoConfig,
    eval: &VideoEvaluation,
    path: &Path,
) -> Result<()> {
    let n = cfg.neig;
    let count = eval.starts.len();
    if count == 0 {
        return Ok(());
    }
    let z = zoom(video);
    let (w, h) = (video.width as u32 * z, video.height as u32 * z);
    let gap = 4;
    let mut sets: Vec<(&Vec<f64>, [&str; 2])> = vec![(
        &eval.features,
        ["learned: largest", "learned: most negative"],
    )];
    if !eval.successor_features.is_empty() {
        sets.push((
            &eval.successor_features,
            ["linear successor features", "linear SF: most negative"],
        ));
    }
    if !eval.pca_features.is_empty() {
        sets.push((
            &eval.pca_features,
            ["PCA on pixels: largest", "PCA: most negative"],
        ));
    }
    let rows = 2 * sets.len() as u32;
    let mut img = image::GrayImage::from_pixel(
        n as u32 * (w + gap) + gap,
        rows * (h + gap) + gap + (sets.len() as u32 - 1) * 2 * gap,
        image::Luma([255]),
    );
    let px = video.pixels();
    let k = cfg.frames_per_input;
    let top = 100.min(count);
    for (si, (f, _)) in sets.iter().enumerate() {
        for j in 0..n {
            let mut order: Vec<usize> = (0..count).collect();
            order.sort_by(|&a, &b| f[b * n + j].total_cmp(&f[a * n + j]));
            for (ri, pick) in [&order[..top], &order[count - top..]].iter().enumerate() {
                let mut mean = vec![0.0f64; px];
                for &i in pick.iter() {
                    let t = eval.starts[i];
                    for c in 0..k {
                        for (m, &v) in mean
                            .iter_mut()
                            .zip(&video.frames[(t + c) * px..(t + c + 1) * px])
                        {
                            *m += v as f64;
                        }
                    }
                }
                let scale = 1.0 / (pick.len() * k) as f64;
                let (x0, y0) = (
                    gap + j as u32 * (w + gap),
                    gap + (2 * si as u32 + ri as u32) * (h + gap) + si as u32 * 2 * gap,
                );
                for y in 0..h {
                    for x in 0..w {
                        let p = (y / z) as usize * video.width + (x / z) as usize;
                        img.put_pixel(
                            x0 + x,
                            y0 + y,
                            image::Luma([(mean[p] * scale).round().clamp(0.0, 255.0) as u8]),
                        );
                    }
                }
            }
        }
    }
    let (left, top) = (190u32, 64u32);
    let mut labels: Vec<Label> = vec![
        (8, 6, "eigenpurposes: mean of the 100 held-out inputs with the largest and most negative value (Fig. 4)".into(), 15),
        (8, 26, format!("frames of each input averaged; columns: feature (learned), eigenpurpose (successor features) or component (PCA) 1 … {n}"), 13),
    ];
    for j in 0..n {
        labels.push((
            (left + gap + j as u32 * (w + gap)) as i32,
            46,
            format!("{}", j + 1),
            13,
        ));
    }
    for r in 0..rows {
        let si = r / 2;
        let y = (top + gap + r * (h + gap) + si * 2 * gap + h / 2) as i32 - 8;
        labels.push((8, y, sets[si as usize].1[r as usize % 2].into(), 13));
    }
    let rgb = image::DynamicImage::ImageLuma8(img).to_rgb8();
    let size = (rgb.width() + left + 8, rgb.height() + top);
    save_rgb(&annotate(&rgb, size, (left, top), &labels)?, path)
}
