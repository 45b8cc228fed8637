//! The paper's bouncing-balls video (§5.2): B balls of radius r in the unit square, moving at
//! constant velocity between elastic collisions with the walls and with each other, simulated
//! event by event (so the dynamics are exactly reversible up to rounding), rendered
//! anti-aliased at S × S pixels.

use rand::Rng;

/// A ball: position and velocity (per frame), in units of the box side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ball {
    /// Centre.
    pub pos: [f64; 2],
    /// Velocity per frame.
    pub vel: [f64; 2],
}

/// Equal-mass balls in the unit square.
#[derive(Clone, Debug, PartialEq)]
pub struct Balls {
    /// Radius.
    pub radius: f64,
    /// The balls.
    pub balls: Vec<Ball>,
}

/// What hits what next.
#[derive(Clone, Copy, Debug)]
enum Event {
    Wall(usize, usize),
    Pair(usize, usize),
}

impl Balls {
    /// `count` balls of `radius` at random non-overlapping places, each moving at `speed` in a
    /// random direction. Panics if they cannot be placed (radius too large for the count).
    pub fn random<R: Rng + ?Sized>(rng: &mut R, count: usize, radius: f64, speed: f64) -> Self {
        let mut balls: Vec<Ball> = Vec::with_capacity(count);
        let mut tries = 0;
        while balls.len() < count {
            tries += 1;
            assert!(
                tries < 100_000,
                "cannot place {count} balls of radius {radius}"
            );
            let pos = [
                rng.random_range(radius..1.0 - radius),
                rng.random_range(radius..1.0 - radius),
            ];
            if balls
                .iter()
                .any(|b| dist2(b.pos, pos) < (2.0 * radius).powi(2) * 1.0001)
            {
                continue;
            }
            let angle = rng.random_range(0.0..std::f64::consts::TAU);
            balls.push(Ball {
                pos,
                vel: [speed * angle.cos(), speed * angle.sin()],
            });
        }
        Self { radius, balls }
    }

    /// The earliest event within `horizon` frames, and its time.
    fn next_event(&self, horizon: f64) -> Option<(f64, Event)> {
        let r = self.radius;
        let mut best: Option<(f64, Event)> = None;
        let mut consider = |t: f64, e: Event| {
            if t > 1e-12 && t <= horizon && best.is_none_or(|(bt, _)| t < bt) {
                best = Some((t, e));
            }
        };
        for (i, b) in self.balls.iter().enumerate() {
            for axis in 0..2 {
                let v = b.vel[axis];
                if v > 0.0 {
                    consider((1.0 - r - b.pos[axis]) / v, Event::Wall(i, axis));
                } else if v < 0.0 {
                    consider((r - b.pos[axis]) / v, Event::Wall(i, axis));
                }
            }
            for j in i + 1..self.balls.len() {
                let c = &self.balls[j];
                let dp = [c.pos[0] - b.pos[0], c.pos[1] - b.pos[1]];
                let dv = [c.vel[0] - b.vel[0], c.vel[1] - b.vel[1]];
                let bq = dp[0] * dv[0] + dp[1] * dv[1];
                if bq >= 0.0 {
                    continue; // moving apart
                }
                let a = dv[0] * dv[0] + dv[1] * dv[1];
                let cq = dp[0] * dp[0] + dp[1] * dp[1] - 4.0 * r * r;
                let disc = bq * bq - a * cq;
                if disc < 0.0 || a == 0.0 {
                    continue;
                }
                consider((-bq - disc.sqrt()) / a, Event::Pair(i, j));
            }
        }
        best
    }

    fn advance(&mut self, t: f64) {
        for b in &mut self.balls {
            b.pos[0] += b.vel[0] * t;
            b.pos[1] += b.vel[1] * t;
        }
    }

    /// Moves the balls on by one frame, resolving every collision in it in time order.
    pub fn step(&mut self) {
        let mut left = 1.0;
        for _ in 0..10_000 {
            match self.next_event(left) {
                None => break,
                Some((t, e)) => {
                    self.advance(t);
                    left -= t;
                    match e {
                        Event::Wall(i, axis) => self.balls[i].vel[axis] = -self.balls[i].vel[axis],
                        Event::Pair(i, j) => self.collide(i, j),
                    }
                }
            }
        }
        self.advance(left);
    }

    /// Elastic collision of equal masses: the velocity components along the line of centres
    /// are exchanged (momentum and energy conserved).
    pub fn collide(&mut self, i: usize, j: usize) {
        let (a, b) = (self.balls[i], self.balls[j]);
        let d = [b.pos[0] - a.pos[0], b.pos[1] - a.pos[1]];
        let len = (d[0] * d[0] + d[1] * d[1]).sqrt().max(1e-300);
        let n = [d[0] / len, d[1] / len];
        let rel = (a.vel[0] - b.vel[0]) * n[0] + (a.vel[1] - b.vel[1]) * n[1];
        for (axis, na) in n.iter().enumerate() {
            self.balls[i].vel[axis] -= rel * na;
            self.balls[j].vel[axis] += rel * na;
        }
    }

    /// Σ |v|² (twice the kinetic energy for unit masses).
    pub fn energy(&self) -> f64 {
        self.balls
            .iter()
            .map(|b| b.vel[0] * b.vel[0] + b.vel[1] * b.vel[1])
            .sum()
    }

    /// Σ v.
    pub fn momentum(&self) -> [f64; 2] {
        self.balls
            .iter()
            .fold([0.0, 0.0], |m, b| [m[0] + b.vel[0], m[1] + b.vel[1]])
    }

    /// Reverses every velocity (running on then retraces the past).
    pub fn reverse(&mut self) {
        for b in &mut self.balls {
            b.vel = [-b.vel[0], -b.vel[1]];
        }
    }

    /// Renders the balls anti-aliased into `size × size` pixels (white on black): each pixel's
    /// intensity is the ball's coverage along a one-pixel ramp at its edge, the brightest ball
    /// where they overlap. Row 0 is y = 0.
    pub fn render(&self, size: usize, out: &mut [u8]) {
        out.fill(0);
        let s = size as f64;
        let r = self.radius * s;
        for b in &self.balls {
            let (cx, cy) = (b.pos[0] * s, b.pos[1] * s);
            let x0 = (cx - r - 1.0).floor().max(0.0) as usize;
            let x1 = ((cx + r + 1.0).ceil() as usize).min(size);
            let y0 = (cy - r - 1.0).floor().max(0.0) as usize;
            let y1 = ((cy + r + 1.0).ceil() as usize).min(size);
            for y in y0..y1 {
                for x in x0..x1 {
                    let d = ((x as f64 + 0.5 - cx).powi(2) + (y as f64 + 0.5 - cy).powi(2)).sqrt();
                    let v = (r - d + 0.5).clamp(0.0, 1.0);
                    let px = &mut out[y * size + x];
                    *px = (*px).max((v * 255.0).round() as u8);
                }
            }
        }
    }
}

fn dist2(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
}

/// Simulates `frames` frames and renders them: (frames T × S × S, positions T × B × 2).
/// `progress` is called with the number of frames done now and then.
pub fn simulate(
    balls: &mut Balls,
    frames: usize,
    size: usize,
    mut progress: impl FnMut(usize),
) -> (Vec<u8>, Vec<f32>) {
    let b = balls.balls.len();
    let mut pixels = vec![0u8; frames * size * size];
    let mut positions = Vec::with_capacity(frames * b * 2);
    for (t, frame) in pixels.chunks_mut(size * size).enumerate() {
        balls.render(size, frame);
        positions.extend(
            balls
                .balls
                .iter()
                .flat_map(|x| [x.pos[0] as f32, x.pos[1] as f32]),
        );
        balls.step();
        if t % 4096 == 0 {
            progress(t);
        }
    }
    progress(frames);
    (pixels, positions)
}

/// A bouncing-balls video to make (`spin balls`).
#[derive(Clone, Debug)]
pub struct BallsVideo {
    /// Frames T.
    pub frames: usize,
    /// Image side S in pixels.
    pub size: usize,
    /// Balls B.
    pub balls: usize,
    /// Radius, in box sides.
    pub radius: f64,
    /// Speed, box sides per frame.
    pub speed: f64,
    /// Seed of the initial places and directions.
    pub seed: u64,
}

impl BallsVideo {
    /// Checks the values: positive sizes, a radius in (0, 0.5), a speed in [0, 0.5), and balls
    /// that cover at most half the box (random placement must find room).
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(crate::SpinError::Config(m));
        if self.frames == 0 || self.size < 4 || self.balls == 0 {
            return bad("--frames and --balls must be positive and --size at least 4".into());
        }
        if !(self.radius > 0.0 && self.radius < 0.5) {
            return bad(format!("--radius must be in (0, 0.5), got {}", self.radius));
        }
        if !(self.speed.is_finite() && self.speed >= 0.0 && self.speed < 0.5) {
            return bad(format!(
                "--speed must be in [0, 0.5) box sides per frame, got {}",
                self.speed
            ));
        }
        let cover = self.balls as f64 * std::f64::consts::PI * self.radius * self.radius;
        if cover > 0.5 {
            return bad(format!(
                "{} balls of radius {} cover {:.0} % of the box; use fewer or smaller balls",
                self.balls,
                self.radius,
                cover * 100.0
            ));
        }
        Ok(())
    }

    /// Simulates and renders the video (one episode, positions included), calling `progress`
    /// with the frames done.
    pub fn generate(&self, progress: impl FnMut(usize)) -> crate::Result<super::video::Video> {
        use rand::SeedableRng;
        self.validate()?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
        let mut balls = Balls::random(&mut rng, self.balls, self.radius, self.speed);
        let (frames, positions) = simulate(&mut balls, self.frames, self.size, progress);
        let mut starts = vec![false; self.frames];
        starts[0] = true;
        Ok(super::video::Video {
            height: self.size,
            width: self.size,
            frames,
            episode_starts: starts,
            positions: Some((self.balls, positions)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn collisions_conserve_energy_and_momentum_and_keep_balls_inside() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut balls = Balls::random(&mut rng, 4, 0.1, 0.037);
        let e0 = balls.energy();
        for _ in 0..5000 {
            balls.step();
            for b in &balls.balls {
                for axis in 0..2 {
                    assert!(
                        b.pos[axis] >= 0.1 - 1e-9 && b.pos[axis] <= 0.9 + 1e-9,
                        "{b:?}"
                    );
                }
            }
            for i in 0..4 {
                for j in i + 1..4 {
                    let d = dist2(balls.balls[i].pos, balls.balls[j].pos).sqrt();
                    assert!(d >= 0.2 - 1e-9, "balls {i} and {j} overlap: {d}");
                }
            }
        }
        assert!((balls.energy() - e0).abs() < 1e-12 * e0.max(1.0));
        // A head-on collision away from the walls conserves momentum exactly.
        let mut two = Balls {
            radius: 0.05,
            balls: vec![
                Ball {
                    pos: [0.3, 0.5],
                    vel: [0.02, 0.003],
                },
                Ball {
                    pos: [0.6, 0.52],
                    vel: [-0.03, 0.0],
                },
            ],
        };
        let (m0, e0) = (two.momentum(), two.energy());
        for _ in 0..6 {
            two.step();
        }
        assert!(two.balls[0].vel[0] < 0.0, "they should have collided");
        let m1 = two.momentum();
        assert!((m1[0] - m0[0]).abs() < 1e-15 && (m1[1] - m0[1]).abs() < 1e-15);
        assert!((two.energy() - e0).abs() < 1e-15);
    }

    #[test]
    fn running_back_retraces_the_past() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let start = Balls::random(&mut rng, 3, 0.12, 0.05);
        let mut balls = start.clone();
        // Billiards are chaotic: rounding errors grow at every collision, so the test runs
        // long enough for several collisions of each kind but not for the errors to explode.
        let frames = 60;
        let mut events = 0;
        for _ in 0..frames {
            let before: Vec<[f64; 2]> = balls.balls.iter().map(|b| b.vel).collect();
            balls.step();
            events += balls
                .balls
                .iter()
                .zip(&before)
                .filter(|(b, v)| b.vel != **v)
                .count();
        }
        assert!(events >= 4, "only {events} velocity changes");
        balls.reverse();
        for _ in 0..frames {
            balls.step();
        }
        balls.reverse();
        for (a, b) in balls.balls.iter().zip(&start.balls) {
            for axis in 0..2 {
                assert!((a.pos[axis] - b.pos[axis]).abs() < 1e-9, "{a:?} vs {b:?}");
                assert!((a.vel[axis] - b.vel[axis]).abs() < 1e-9, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn rendering_is_anti_aliased_and_covers_the_disc() {
        let balls = Balls {
            radius: 0.25,
            balls: vec![Ball {
                pos: [0.5, 0.5],
                vel: [0.0, 0.0],
            }],
        };
        let mut px = vec![0u8; 32 * 32];
        balls.render(32, &mut px);
        assert_eq!(px[16 * 32 + 16], 255);
        assert_eq!(px[0], 0);
        let partial = px.iter().filter(|&&v| v > 0 && v < 255).count();
        assert!(partial > 10, "no anti-aliased edge pixels");
        let area: f64 = px.iter().map(|&v| v as f64 / 255.0).sum();
        let want = std::f64::consts::PI * 8.0 * 8.0;
        assert!((area - want).abs() < 0.03 * want, "{area} vs {want}");
    }
}
