#!/usr/bin/env python3
"""Writes the test graphs of the README's `spin graph` section (plain Python, no NumPy).

    python3 docs/make_graphs.py --out runs/graphs [--seed 0]

ring:   n = 1000 nodes evenly spaced on the unit circle, features (cos θ, sin θ), an edge between
        neighbours (the cycle graph; eigenvalues 1 − cos(2πk/n) twice each).
torus:  a 60 × 60 periodic grid, features (cos a, sin a, cos b, sin b), edges to the 4 neighbours.
sphere: 4000 uniform random points on the unit sphere, a random geometric graph (an edge of
        weight 1 between points closer than r, r giving about 30 neighbours on average).
Each also gets 500 test nodes (`*-test.csv`) drawn the same way (random angles for the ring).
torus-walk: a time series for `--sequence`: 200 000 steps of a random walk on the 2D torus
        (angle steps with standard deviations 0.10 and 0.15), features (cos a, sin a, cos b,
        sin b) — the walk's slowest functions are the torus's Fourier modes.
"""
import argparse
import math
import os
import random


def write(path, rows, fmt="%.9g"):
    with open(path, "w") as f:
        for r in rows:
            f.write(",".join(fmt % v for v in r) + "\n")


def sphere_point(rng):
    while True:
        x = [rng.gauss(0, 1) for _ in range(3)]
        r = math.sqrt(sum(v * v for v in x))
        if r > 1e-9:
            return [v / r for v in x]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="runs/graphs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sphere-nodes", type=int, default=4000)
    a = p.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    o = lambda name: os.path.join(a.out, name)

    n = 1000
    write(o("ring.csv"), [(math.cos(2 * math.pi * i / n), math.sin(2 * math.pi * i / n)) for i in range(n)])
    write(o("ring-edges.csv"), [(i, (i + 1) % n) for i in range(n)], "%d")
    t = [rng.uniform(0, 2 * math.pi) for _ in range(500)]
    write(o("ring-test.csv"), [(math.cos(v), math.sin(v)) for v in t])

    m = 60
    nodes, edges = [], []
    for i in range(m):
        for j in range(m):
            u, v = 2 * math.pi * i / m, 2 * math.pi * j / m
            nodes.append((math.cos(u), math.sin(u), math.cos(v), math.sin(v)))
            edges.append((i * m + j, ((i + 1) % m) * m + j))
            edges.append((i * m + j, i * m + (j + 1) % m))
    write(o("torus.csv"), nodes)
    write(o("torus-edges.csv"), edges, "%d")
    t = [(rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)) for _ in range(500)]
    write(o("torus-test.csv"), [(math.cos(u), math.sin(u), math.cos(v), math.sin(v)) for u, v in t])

    ns = a.sphere_nodes
    pts = [sphere_point(rng) for _ in range(ns)]
    # Mean degree ≈ ns · (cap area / 4π) = ns (1 − cos θ)/2 for the angular radius θ.
    cos_t = 1 - 2 * 30 / ns
    r2 = 2 - 2 * cos_t
    # Cells of a coarse grid keep the neighbour search near-linear.
    h = math.sqrt(r2)
    cells = {}
    for i, x in enumerate(pts):
        cells.setdefault(tuple(int(math.floor(c / h)) for c in x), []).append(i)
    edges = []
    for i, x in enumerate(pts):
        c = tuple(int(math.floor(v / h)) for v in x)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for dz in (-1, 0, 1):
                    for j in cells.get((c[0] + dx, c[1] + dy, c[2] + dz), []):
                        if j > i and sum((x[k] - pts[j][k]) ** 2 for k in range(3)) < r2:
                            edges.append((i, j))
    write(o("sphere.csv"), pts)
    write(o("sphere-edges.csv"), edges, "%d")
    write(o("sphere-test.csv"), [sphere_point(rng) for _ in range(500)])
    u, v, walk = 0.0, 0.0, []
    for _ in range(200000):
        walk.append((math.cos(u), math.sin(u), math.cos(v), math.sin(v)))
        u = (u + rng.gauss(0, 0.10)) % (2 * math.pi)
        v = (v + rng.gauss(0, 0.15)) % (2 * math.pi)
    write(o("torus-walk.csv"), walk)
    print(f"wrote {a.out}: ring 1000 nodes, torus {m * m}, sphere {ns} nodes / {len(edges)} edges, torus-walk 200000 steps")


if __name__ == "__main__":
    main()
