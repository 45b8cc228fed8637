//! `spin balls` and `spin arcade`: the videos we make ourselves.

use std::path::PathBuf;

use anyhow::Result;

use spectral_inference::data::{arcade, balls::BallsVideo};

/// `spin balls`'s flags.
#[derive(clap::Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct BallsArgs {
    /// Frames T.
    #[arg(long, default_value_t = 200_000)]
    frames: usize,
    /// Image side S in pixels.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Number of balls B.
    #[arg(long, default_value_t = 3)]
    balls: usize,
    /// Ball radius, in units of the box side.
    #[arg(long, default_value_t = 0.1)]
    radius: f64,
    /// Speed, box sides per frame.
    #[arg(long, default_value_t = 0.03)]
    speed: f64,
    /// Random seed (initial places and directions).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file.
    #[arg(long, default_value = "runs/balls.npz")]
    out: PathBuf,
}

/// `spin arcade`'s flags.
#[derive(clap::Args, Debug)]
pub struct ArcadeArgs {
    /// Frames T.
    #[arg(long, default_value_t = 50_000)]
    frames: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 84)]
    size: usize,
    /// Random seed (the agent's actions and the launch angles).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file.
    #[arg(long, default_value = "runs/arcade.npz")]
    out: PathBuf,
}

/// A progress bar over `frames` frames (nothing with `--quiet`).
fn frames_bar(frames: usize) -> indicatif::ProgressBar {
    if spectral_inference::experiments::progress::quiet() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(frames as u64)
    }
}

/// Simulates the balls and saves the video.
pub fn run_balls(args: &BallsArgs) -> Result<()> {
    let spec = BallsVideo {
        frames: args.frames,
        size: args.size,
        balls: args.balls,
        radius: args.radius,
        speed: args.speed,
        seed: args.seed,
    };
    spec.validate()?;
    let bar = frames_bar(args.frames);
    let start = std::time::Instant::now();
    let video = spec.generate(|t| bar.set_position(t as u64))?;
    bar.finish_and_clear();
    video.save_npz(&args.out)?;
    println!(
        "{} frames of {}×{} with {} balls in {:.1} s → {}",
        args.frames,
        args.size,
        args.size,
        args.balls,
        start.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

/// Plays the arcade game and saves the video.
pub fn run_arcade(args: &ArcadeArgs) -> Result<()> {
    let bar = frames_bar(args.frames);
    let start = std::time::Instant::now();
    let video = arcade::generate(args.frames, args.size, args.seed, |t| {
        bar.set_position(t as u64)
    })?;
    bar.finish_and_clear();
    let episodes = video.episode_starts.iter().filter(|&&s| s).count();
    video.save_npz(&args.out)?;
    println!(
        "{} frames of {}×{} in {} episodes in {:.1} s → {}",
        args.frames,
        args.size,
        args.size,
        episodes,
        start.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
