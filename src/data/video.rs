//! Videos for slow feature analysis (maths §9): grayscale frames split into episodes, read from
//! the reference's `.npz` episode files or from folders of PNG frames; inputs of k stacked
//! frames; clips of consecutive inputs that never cross an episode; the held-out split.

use std::ops::Range;
use std::path::{Path, PathBuf};

use rand::Rng;

use super::npy::{read_npz, write_npz, NpyArray, NpyData};
use crate::error::{Result, SpinError};

/// A grayscale video: T frames of H × W pixels, split into episodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Video {
    /// Frame height.
    pub height: usize,
    /// Frame width.
    pub width: usize,
    /// Pixels, T × H × W, row-major.
    pub frames: Vec<u8>,
    /// T flags, true where an episode begins (the first frame always does).
    pub episode_starts: Vec<bool>,
    /// Ground-truth object positions, T × B × 2 in [0, 1] (generated videos), and B.
    pub positions: Option<(usize, Vec<f32>)>,
}

fn parse_err(path: &Path, message: String) -> SpinError {
    SpinError::Parse {
        path: path.display().to_string(),
        message,
    }
}

impl Video {
    /// Frames T.
    pub fn len(&self) -> usize {
        self.episode_starts.len()
    }

    /// Whether there are no frames.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pixels per frame.
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// The episodes as frame ranges.
    pub fn episodes(&self) -> Vec<Range<usize>> {
        let mut starts: Vec<usize> = (0..self.len())
            .filter(|&t| t == 0 || self.episode_starts[t])
            .collect();
        starts.push(self.len());
        starts.windows(2).map(|w| w[0]..w[1]).collect()
    }

    /// Reads `path`: an `.npz` file, a folder of PNG frames (one episode) or a folder of such
    /// folders (one episode each).
    pub fn load(path: &Path) -> Result<Self> {
        if path.is_dir() {
            Self::from_png_folder(path)
        } else {
            Self::from_npz(path)
        }
    }

    /// Reads the reference's episode format: `frames` (uint8, T × H × W), optional
    /// `episode_starts` (bool, T) and `positions` (float32, T × B × 2).
    pub fn from_npz(path: &Path) -> Result<Self> {
        let arrays = read_npz(path)?;
        let get = |name: &str| arrays.iter().find(|(k, _)| k == name).map(|(_, a)| a);
        let frames = get("frames").ok_or_else(|| {
            let names: Vec<&str> = arrays.iter().map(|(k, _)| k.as_str()).collect();
            parse_err(
                path,
                format!("no `frames` array (it has: {})", names.join(", ")),
            )
        })?;
        if frames.shape.len() != 3 {
            return Err(parse_err(
                path,
                format!(
                    "`frames` must have rank 3 (T × H × W), got shape {:?}",
                    frames.shape
                ),
            ));
        }
        let NpyData::U8(pixels) = &frames.data else {
            return Err(parse_err(
                path,
                format!("`frames` must be uint8, got {}", frames.data.descr()),
            ));
        };
        let (t, h, w) = (frames.shape[0], frames.shape[1], frames.shape[2]);
        let episode_starts = match get("episode_starts") {
            None => {
                let mut s = vec![false; t];
                if t > 0 {
                    s[0] = true;
                }
                s
            }
            Some(a) => {
                let flags: Vec<bool> = match &a.data {
                    NpyData::Bool(v) => v.clone(),
                    NpyData::U8(v) => v.iter().map(|&x| x != 0).collect(),
                    other => {
                        return Err(parse_err(
                            path,
                            format!("`episode_starts` must be bool, got {}", other.descr()),
                        ))
                    }
                };
                if a.shape != [t] {
                    return Err(parse_err(
                        path,
                        format!(
                            "`episode_starts` has shape {:?} but there are {t} frames",
                            a.shape
                        ),
                    ));
                }
                flags
            }
        };
        let positions = match get("positions") {
            None => None,
            Some(a) => {
                let NpyData::F32(v) = &a.data else {
                    return Err(parse_err(
                        path,
                        format!("`positions` must be float32, got {}", a.data.descr()),
                    ));
                };
                if a.shape.len() != 3 || a.shape[0] != t || a.shape[2] != 2 {
                    return Err(parse_err(
                        path,
                        format!(
                            "`positions` must be T × B × 2 with T = {t}, got {:?}",
                            a.shape
                        ),
                    ));
                }
                Some((a.shape[1], v.clone()))
            }
        };
        let video = Self {
            height: h,
            width: w,
            frames: pixels.clone(),
            episode_starts,
            positions,
        };
        if video.is_empty() || h == 0 || w == 0 {
            return Err(parse_err(path, "the video has no frames".into()));
        }
        Ok(video)
    }

    /// Writes the video as `.npz` (`frames`, `episode_starts`, and `positions` when known).
    pub fn save_npz(&self, path: &Path) -> Result<()> {
        let frames = NpyArray::new(
            vec![self.len(), self.height, self.width],
            NpyData::U8(self.frames.clone()),
        )?;
        let starts = NpyArray::new(vec![self.len()], NpyData::Bool(self.episode_starts.clone()))?;
        let mut arrays = vec![("frames", &frames), ("episode_starts", &starts)];
        let pos;
        if let Some((b, p)) = &self.positions {
            pos = NpyArray::new(vec![self.len(), *b, 2], NpyData::F32(p.clone()))?;
            arrays.push(("positions", &pos));
        }
        write_npz(path, &arrays)
    }

    /// Reads a folder of PNG frames in name order (one episode), or a folder of such folders
    /// (one episode each, in name order). Colour frames are converted to luma.
    pub fn from_png_folder(path: &Path) -> Result<Self> {
        let list = |dir: &Path| -> Result<Vec<PathBuf>> {
            let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|source| SpinError::Io {
                    path: dir.display().to_string(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            v.sort();
            Ok(v)
        };
        let is_png = |p: &PathBuf| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
        let entries = list(path)?;
        let episodes: Vec<Vec<PathBuf>> = if entries.iter().any(is_png) {
            vec![entries.into_iter().filter(is_png).collect()]
        } else {
            entries
                .iter()
                .filter(|p| p.is_dir())
                .map(|d| Ok(list(d)?.into_iter().filter(is_png).collect::<Vec<_>>()))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .filter(|e| !e.is_empty())
                .collect()
        };
        if episodes.is_empty() {
            return Err(parse_err(
                path,
                "no PNG frames here (a folder of .png files, or a folder of such folders)".into(),
            ));
        }
        let mut video = Video {
            height: 0,
            width: 0,
            frames: Vec::new(),
            episode_starts: Vec::new(),
            positions: None,
        };
        for episode in &episodes {
            for (i, file) in episode.iter().enumerate() {
                let img = image::open(file)
                    .map_err(|e| parse_err(file, format!("not a readable PNG: {e}")))?
                    .to_luma8();
                let (w, h) = (img.width() as usize, img.height() as usize);
                if video.frames.is_empty() {
                    (video.height, video.width) = (h, w);
                } else if (h, w) != (video.height, video.width) {
                    return Err(parse_err(
                        file,
                        format!(
                            "frame of {w}×{h} pixels, the first frame is {}×{}",
                            video.width, video.height
                        ),
                    ));
                }
                video.frames.extend(img.into_raw());
                video.episode_starts.push(i == 0);
            }
        }
        Ok(video)
    }
}

/// Where the network's inputs come from: `frames_per_input` consecutive frames stacked as
/// channels, never across an episode start, and clips of `clip_len` consecutive inputs.
#[derive(Clone, Debug)]
pub struct ClipSource {
    /// Frames stacked per input (k).
    pub frames_per_input: usize,
    /// Consecutive inputs per clip (L).
    pub clip_len: usize,
    /// Frame ranges that inputs are drawn from (each inside one episode).
    pub ranges: Vec<Range<usize>>,
}

impl ClipSource {
    /// Clips from `ranges` of `video`; an error when no range holds one whole clip.
    pub fn new(
        ranges: Vec<Range<usize>>,
        frames_per_input: usize,
        clip_len: usize,
    ) -> Result<Self> {
        if frames_per_input == 0 || clip_len == 0 {
            return Err(SpinError::Config(
                "frames per input and clip length must be positive".into(),
            ));
        }
        let s = Self {
            frames_per_input,
            clip_len,
            ranges,
        };
        if s.clip_starts() == 0 {
            return Err(SpinError::Config(format!(
                "too few frames for one clip: a clip of {clip_len} inputs of {frames_per_input} frames needs {} consecutive frames in one episode",
                clip_len + frames_per_input - 1
            )));
        }
        Ok(s)
    }

    /// Consecutive frames one clip spans.
    pub fn clip_frames(&self) -> usize {
        self.clip_len + self.frames_per_input - 1
    }

    /// How many clip start frames there are.
    pub fn clip_starts(&self) -> usize {
        self.ranges
            .iter()
            .map(|r| (r.len() + 1).saturating_sub(self.clip_frames()))
            .sum()
    }

    /// The first frame of clip start number `i` (0 ≤ i < clip_starts()).
    pub fn clip_start(&self, mut i: usize) -> usize {
        for r in &self.ranges {
            let n = (r.len() + 1).saturating_sub(self.clip_frames());
            if i < n {
                return r.start + i;
            }
            i -= n;
        }
        panic!("clip start out of range")
    }

    /// `clips` random clip starts (first frames).
    pub fn sample_starts<R: Rng + ?Sized>(&self, rng: &mut R, clips: usize) -> Vec<usize> {
        let n = self.clip_starts();
        (0..clips)
            .map(|_| self.clip_start(rng.random_range(0..n)))
            .collect()
    }

    /// Every input start frame of the ranges (inputs that fit in their range), in order.
    pub fn input_starts(&self) -> Vec<usize> {
        self.ranges
            .iter()
            .flat_map(|r| {
                let k = self.frames_per_input;
                r.start..(r.end + 1).saturating_sub(k).max(r.start)
            })
            .collect()
    }
}

/// The network input that starts at frame `t`: k frames as channels, NHWC, pixels in [0, 1].
pub fn input_at(video: &Video, t: usize, k: usize, out: &mut Vec<f64>) {
    let px = video.pixels();
    for p in 0..px {
        for c in 0..k {
            out.push(video.frames[(t + c) * px + p] as f64 / 255.0);
        }
    }
}

/// The training and held-out frame ranges: the last `fraction` of every episode is held out.
pub fn split_episodes(video: &Video, fraction: f64) -> (Vec<Range<usize>>, Vec<Range<usize>>) {
    let mut train = Vec::new();
    let mut test = Vec::new();
    for e in video.episodes() {
        let cut = e.start + ((1.0 - fraction) * e.len() as f64).round() as usize;
        train.push(e.start..cut);
        test.push(cut..e.end);
    }
    (train, test)
}
