//! A small Atari-like game played by a random agent, for eigenpurpose experiments (paper C.3)
//! without game ROMs: a Breakout-style screen (walls, a band of bricks, a paddle, a ball) at
//! 84×84 like the reference's preprocessed Atari frames, with episodes that end when the ball
//! is missed or the bricks are gone.
//!
//! The agent repeats its last action (left, stay, right) with probability [`STICKY`], else draws
//! one uniformly, as Atari's sticky-action protocol does. The ball moves in straight lines,
//! reflects off walls and bricks (which disappear), and leaves the paddle at an angle set by
//! where it hit. Positions (paddle, ball) are recorded in [0, 1] for the heat maps.

use rand::Rng;

/// Probability that the agent repeats its previous action.
pub const STICKY: f64 = 0.75;
/// Frames after which an episode is cut even if the ball is still in play.
pub const MAX_EPISODE: usize = 4000;

const WALL: f64 = 2.0 / 84.0;
const PADDLE_Y: f64 = 76.0 / 84.0;
const PADDLE_H: f64 = 3.0 / 84.0;
const PADDLE_W: f64 = 12.0 / 84.0;
const PADDLE_SPEED: f64 = 2.0 / 84.0;
const BALL_R: f64 = 1.5 / 84.0;
const BALL_SPEED: f64 = 1.6 / 84.0;
const BRICK_TOP: f64 = 12.0 / 84.0;
const BRICK_ROWS: usize = 3;
const BRICK_COLS: usize = 8;
const BRICK_H: f64 = 4.0 / 84.0;

/// Grey levels of the screen's parts.
const WALL_LEVEL: u8 = 142;
const BRICK_LEVEL: u8 = 110;
const PADDLE_LEVEL: u8 = 200;
const BALL_LEVEL: u8 = 255;

/// The game's state, in units of the screen side (x right, y down).
#[derive(Clone, Debug)]
pub struct Arcade {
    /// Paddle centre x.
    pub paddle: f64,
    /// Ball centre.
    pub ball: [f64; 2],
    /// Ball velocity per frame.
    pub vel: [f64; 2],
    /// Bricks still standing, row-major (BRICK_ROWS × BRICK_COLS).
    pub bricks: Vec<bool>,
    /// The agent's last action: −1 left, 0 stay, 1 right.
    pub action: i32,
    /// Frames since the episode began.
    pub age: usize,
}

impl Arcade {
    /// A new episode: all bricks, paddle in the middle, the ball launched upwards from above it
    /// at a random angle within ±45°.
    pub fn new<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut a = Self {
            paddle: 0.5,
            ball: [0.5, 0.0],
            vel: [0.0, 0.0],
            bricks: vec![true; BRICK_ROWS * BRICK_COLS],
            action: 0,
            age: 0,
        };
        a.launch(rng);
        a
    }

    fn launch<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        let angle: f64 = rng.random_range(-0.785..0.785);
        self.ball = [self.paddle, PADDLE_Y - 2.0 * BALL_R];
        self.vel = [BALL_SPEED * angle.sin(), -BALL_SPEED * angle.cos()];
    }

    fn brick_rect(i: usize) -> [f64; 4] {
        let (row, col) = (i / BRICK_COLS, i % BRICK_COLS);
        let w = (1.0 - 2.0 * WALL) / BRICK_COLS as f64;
        let x0 = WALL + col as f64 * w;
        let y0 = BRICK_TOP + row as f64 * BRICK_H;
        [x0, y0, x0 + w, y0 + BRICK_H]
    }

    /// One frame: the agent acts, the paddle and the ball move. Returns false when the episode
    /// is over (ball missed, bricks cleared, or [`MAX_EPISODE`] frames).
    pub fn step<R: Rng + ?Sized>(&mut self, rng: &mut R) -> bool {
        if !rng.random_bool(STICKY) {
            self.action = rng.random_range(-1..=1);
        }
        let half = PADDLE_W / 2.0;
        self.paddle =
            (self.paddle + self.action as f64 * PADDLE_SPEED).clamp(WALL + half, 1.0 - WALL - half);
        let [mut x, mut y] = self.ball;
        x += self.vel[0];
        y += self.vel[1];
        // Walls: left, right, top.
        if x - BALL_R < WALL {
            x = 2.0 * (WALL + BALL_R) - x;
            self.vel[0] = self.vel[0].abs();
        }
        if x + BALL_R > 1.0 - WALL {
            x = 2.0 * (1.0 - WALL - BALL_R) - x;
            self.vel[0] = -self.vel[0].abs();
        }
        if y - BALL_R < WALL {
            y = 2.0 * (WALL + BALL_R) - y;
            self.vel[1] = self.vel[1].abs();
        }
        // Bricks: the first one the ball overlaps goes, and the ball turns back vertically.
        if let Some(i) = (0..self.bricks.len()).find(|&i| {
            let [x0, y0, x1, y1] = Self::brick_rect(i);
            self.bricks[i]
                && x + BALL_R > x0
                && x - BALL_R < x1
                && y + BALL_R > y0
                && y - BALL_R < y1
        }) {
            self.bricks[i] = false;
            self.vel[1] = -self.vel[1];
            y += 2.0 * self.vel[1];
        }
        // Paddle: a hit sends the ball up at an angle set by the offset from the centre.
        if self.vel[1] > 0.0
            && y + BALL_R >= PADDLE_Y
            && y - BALL_R <= PADDLE_Y + PADDLE_H
            && (x - self.paddle).abs() <= half + BALL_R
        {
            let off = ((x - self.paddle) / (half + BALL_R)).clamp(-1.0, 1.0);
            let angle = off * 1.0;
            self.vel = [BALL_SPEED * angle.sin(), -BALL_SPEED * angle.cos()];
            y = PADDLE_Y - BALL_R;
        }
        self.ball = [x, y];
        self.age += 1;
        y - BALL_R <= 1.0 && self.bricks.iter().any(|&b| b) && self.age < MAX_EPISODE
    }

    /// Renders the screen into `size × size` grey levels (row 0 at the top): walls, bricks and
    /// paddle as filled rectangles with coverage-weighted edges, the ball anti-aliased.
    pub fn render(&self, size: usize, out: &mut [u8]) {
        out.fill(0);
        let s = size as f64;
        let mut rect = |r: [f64; 4], level: u8| {
            let (x0, y0, x1, y1) = (r[0] * s, r[1] * s, r[2] * s, r[3] * s);
            let (px0, px1) = (x0.floor().max(0.0) as usize, (x1.ceil() as usize).min(size));
            let (py0, py1) = (y0.floor().max(0.0) as usize, (y1.ceil() as usize).min(size));
            for py in py0..py1 {
                let cy = ((py as f64 + 1.0).min(y1) - (py as f64).max(y0)).clamp(0.0, 1.0);
                for px in px0..px1 {
                    let cx = ((px as f64 + 1.0).min(x1) - (px as f64).max(x0)).clamp(0.0, 1.0);
                    let v = (cx * cy * level as f64).round() as u8;
                    let p = &mut out[py * size + px];
                    *p = (*p).max(v);
                }
            }
        };
        rect([0.0, 0.0, WALL, 1.0], WALL_LEVEL);
        rect([1.0 - WALL, 0.0, 1.0, 1.0], WALL_LEVEL);
        rect([0.0, 0.0, 1.0, WALL], WALL_LEVEL);
        for (i, _) in self.bricks.iter().enumerate().filter(|(_, &b)| b) {
            let [x0, y0, x1, y1] = Self::brick_rect(i);
            // A one-pixel gap between bricks keeps them apart.
            rect([x0, y0, x1 - 1.0 / s, y1 - 1.0 / s], BRICK_LEVEL);
        }
        let half = PADDLE_W / 2.0;
        rect(
            [
                self.paddle - half,
                PADDLE_Y,
                self.paddle + half,
                PADDLE_Y + PADDLE_H,
            ],
            PADDLE_LEVEL,
        );
        let (cx, cy, r) = (self.ball[0] * s, self.ball[1] * s, BALL_R * s);
        let (x0, x1) = (
            (cx - r - 1.0).floor().max(0.0) as usize,
            ((cx + r + 1.0).ceil() as usize).min(size),
        );
        let (y0, y1) = (
            (cy - r - 1.0).floor().max(0.0) as usize,
            ((cy + r + 1.0).ceil() as usize).min(size),
        );
        for y in y0..y1 {
            for x in x0..x1 {
                let d = ((x as f64 + 0.5 - cx).powi(2) + (y as f64 + 0.5 - cy).powi(2)).sqrt();
                let v = ((r - d + 0.5).clamp(0.0, 1.0) * BALL_LEVEL as f64).round() as u8;
                let p = &mut out[y * size + x];
                *p = (*p).max(v);
            }
        }
    }
}

/// Plays `frames` frames with the random agent, starting a new episode whenever one ends.
/// Returns (frames T × S × S, episode starts T, positions T × 2 × 2: paddle then ball, in
/// [0, 1]). `progress` is called with the frames done now and then.
pub fn play<R: Rng + ?Sized>(
    rng: &mut R,
    frames: usize,
    size: usize,
    mut progress: impl FnMut(usize),
) -> (Vec<u8>, Vec<bool>, Vec<f32>) {
    let mut out = vec![0u8; frames * size * size];
    let mut starts = vec![false; frames];
    let mut positions = Vec::with_capacity(frames * 4);
    let mut game = Arcade::new(rng);
    let mut fresh = true;
    for (t, frame) in out.chunks_mut(size * size).enumerate() {
        if fresh {
            starts[t] = true;
            fresh = false;
        }
        game.render(size, frame);
        positions.extend([
            game.paddle as f32,
            (PADDLE_Y + PADDLE_H / 2.0) as f32,
            game.ball[0].clamp(0.0, 1.0) as f32,
            game.ball[1].clamp(0.0, 1.0) as f32,
        ]);
        if !game.step(rng) {
            game = Arcade::new(rng);
            fresh = true;
        }
        if t % 4096 == 0 {
            progress(t);
        }
    }
    (out, starts, positions)
}

/// The Atari-like video of `frames` frames of `size`² pixels played with `seed` (`spin
/// arcade`), calling `progress` with the frames done.
pub fn generate(
    frames: usize,
    size: usize,
    seed: u64,
    progress: impl FnMut(usize),
) -> crate::Result<super::video::Video> {
    use rand::SeedableRng;
    if frames == 0 || size < 16 {
        return Err(crate::SpinError::Config(
            "--frames must be positive and --size at least 16".into(),
        ));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (frames_data, starts, positions) = play(&mut rng, frames, size, progress);
    Ok(super::video::Video {
        height: size,
        width: size,
        frames: frames_data,
        episode_starts: starts,
        positions: Some((2, positions)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn episodes_start_fresh_and_the_ball_stays_on_screen() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (frames, starts, pos) = play(&mut rng, 3000, 84, |_| {});
        assert_eq!(frames.len(), 3000 * 84 * 84);
        assert!(starts[0]);
        let episodes = starts.iter().filter(|&&s| s).count();
        // A random agent misses often, but not every few frames.
        assert!((3..300).contains(&episodes), "{episodes} episodes");
        for p in pos.chunks(4) {
            assert!(p.iter().all(|v| (0.0..=1.0).contains(v)), "{p:?}");
        }
        // Every frame shows the walls and the paddle; some pixel is the ball's level.
        for f in frames.chunks(84 * 84) {
            assert_eq!(f[84 * 40], WALL_LEVEL);
            assert!(f.contains(&PADDLE_LEVEL));
        }
    }

    #[test]
    fn the_same_seed_plays_the_same_game() {
        let play_seed = |s| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s);
            play(&mut rng, 500, 84, |_| {})
        };
        assert_eq!(play_seed(7).0, play_seed(7).0);
        assert_ne!(play_seed(7).0, play_seed(8).0);
    }

    #[test]
    fn bricks_fall_and_the_paddle_returns_the_ball() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (mut hits, mut returns) = (0, 0);
        for _ in 0..200 {
            let mut g = Arcade::new(&mut rng);
            let mut going_down = false;
            loop {
                let before = g.bricks.iter().filter(|&&b| b).count();
                let alive = g.step(&mut rng);
                hits += before - g.bricks.iter().filter(|&&b| b).count();
                if going_down && g.vel[1] < 0.0 && g.ball[1] > 0.5 {
                    returns += 1;
                }
                going_down = g.vel[1] > 0.0;
                if !alive {
                    break;
                }
            }
        }
        assert!(hits > 50, "{hits} bricks hit in 200 episodes");
        assert!(returns > 20, "{returns} paddle returns in 200 episodes");
    }
}
