#!/usr/bin/env python3
"""Writes the inputs of robustness.md's "cases no issue named" (plain Python, no NumPy).

    python3 docs/make_checks.py --out runs/checks

grid.csv, grid-edges.csv: a 40 × 30 open grid graph, features (x, y), edges to the 4 neighbours.
dumbbell.csv:  two Gaussian blobs of 1 000 points (σ 0.45, centres ±1.5 on the x axis) joined by
               a strip of 150 points; dumbbell-test.csv: 300 more blob points (for --test-nodes).
swiss.csv:     3 000 points on a swiss roll in 3D.
pendulum/epK:  3 episodes of 1 500 PNG frames, 24 × 24: a blurred bob on a noisy, damped
               pendulum over a slowly drifting grating (for `spin video --data pendulum`).
"""
import argparse
import math
import os
import random
import struct
import zlib


def write(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(",".join("%.9g" % v for v in r) + "\n")


def png(path, w, h, pix):
    raw = b"".join(b"\x00" + bytes(pix[y * w:(y + 1) * w]) for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw)))
        f.write(chunk(b"IEND", b""))


def graphs(out, rng):
    nx, ny = 40, 30
    nodes = [[(i + 0.5) / nx, (j + 0.5) / nx] for j in range(ny) for i in range(nx)]
    edges = []
    for j in range(ny):
        for i in range(nx):
            k = j * nx + i
            if i + 1 < nx:
                edges.append([k, k + 1])
            if j + 1 < ny:
                edges.append([k, k + nx])
    write(os.path.join(out, "grid.csv"), nodes)
    write(os.path.join(out, "grid-edges.csv"), edges)
    pts = []
    for c in (-1.5, 1.5):
        for _ in range(1000):
            pts.append([c + rng.gauss(0, 0.45), rng.gauss(0, 0.45)])
    for _ in range(150):
        pts.append([rng.uniform(-1.2, 1.2), rng.gauss(0, 0.05)])
    write(os.path.join(out, "dumbbell.csv"), pts)
    test = [[rng.choice((-1.5, 1.5)) + rng.gauss(0, 0.45), rng.gauss(0, 0.45)] for _ in range(300)]
    write(os.path.join(out, "dumbbell-test.csv"), test)
    roll = []
    for _ in range(3000):
        t = 1.5 * math.pi * (1 + 2 * rng.random())
        h = 10 * rng.random()
        roll.append([t * math.cos(t) / 10, h / 10, t * math.sin(t) / 10])
    write(os.path.join(out, "swiss.csv"), roll)


def pendulum(out, rng, size=24, frames=1500, episodes=3):
    for ep in range(episodes):
        d = os.path.join(out, "pendulum", "ep%d" % ep)
        os.makedirs(d, exist_ok=True)
        th, om = rng.uniform(-1, 1), 0.0
        phase = rng.random() * 6.28
        for t in range(frames):
            om += -0.02 * math.sin(th) - 0.002 * om + rng.gauss(0, 0.004)
            th += om
            phase += 0.01
            bx, by = 12 + 9 * math.sin(th), 3 + 9 * math.cos(th)
            pix = []
            for y in range(size):
                for x in range(size):
                    v = 40 + 30 * math.sin(phase + 0.25 * x)
                    v += 180 * math.exp(-((x - bx) ** 2 + (y - by) ** 2) / 4.0)
                    pix.append(max(0, min(255, int(v))))
            png(os.path.join(d, "%05d.png" % t), size, size, pix)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="runs/checks")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    graphs(args.out, random.Random(7))
    pendulum(args.out, random.Random(3))


if __name__ == "__main__":
    main()
