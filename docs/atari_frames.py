"""Random-agent frames of a real Atari game in the reference's npz format, for `spin video`.

Not a dependency of the project: it needs the Arcade Learning Environment from PyPI, which ships
the game ROMs (`pip install ale-py numpy pillow`). DQN's preprocessing: every 4th frame (the
action repeated in between, the max of the last two frames against flicker), grayscale, resized to
84×84; a uniformly random action each step; an episode ends at game over or after
--max-episode-frames kept frames. Writes `frames` (uint8 T×84×84) and `episode_starts` (bool T).

    python docs/atari_frames.py --game breakout --frames 40000 --seed 0 --out runs/breakout.npz
    python docs/atari_frames.py --game breakout --frames 8000 --seed 1 --out runs/breakout-test.npz
"""

import argparse

import numpy as np
from ale_py import ALEInterface, roms
from PIL import Image


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--game", default="breakout")
    p.add_argument("--frames", type=int, default=40000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip", type=int, default=4)
    p.add_argument("--max-episode-frames", type=int, default=5000)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    ale = ALEInterface()
    ale.setInt("random_seed", a.seed)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(roms.get_rom_path(a.game))
    actions = ale.getMinimalActionSet()
    rng = np.random.default_rng(a.seed)
    frames = np.zeros((a.frames, 84, 84), np.uint8)
    starts = np.zeros(a.frames, bool)
    t, kept = 0, 0
    starts[0] = True
    while t < a.frames:
        action = actions[rng.integers(len(actions))]
        last = []
        for i in range(a.skip):
            ale.act(action)
            if i >= a.skip - 2:
                last.append(ale.getScreenGrayscale())
        img = np.maximum(last[0], last[-1])
        frames[t] = np.asarray(Image.fromarray(img).resize((84, 84), Image.BILINEAR))
        t += 1
        kept += 1
        if ale.game_over() or kept >= a.max_episode_frames:
            ale.reset_game()
            kept = 0
            if t < a.frames:
                starts[t] = True
    np.savez_compressed(a.out, frames=frames, episode_starts=starts)
    print(f"{a.game}: {a.frames} frames, {starts.sum()} episodes -> {a.out}")


if __name__ == "__main__":
    main()
