"""The box's own effect on the hydrogen levels of H = -lap - 1/r.

2D: E_n = -1/(2n+1)^2. A square [-D, D]^2 contains the disc of radius D and lies inside the disc
of radius D*sqrt(2), so (Dirichlet monotonicity) its eigenvalues lie between those two discs'.
In a disc the problem separates: psi = R(r) e^{i m phi}, u = sqrt(r) R,
-u'' + ((m^2 - 1/4)/r^2 - 1/r) u = E u.  3D: E_n = -1/(4 n^2); a cube lies between the balls of
radius D and D*sqrt(3); u = r R, -u'' + (l(l+1)/r^2 - 1/r) u = E u.  Both with u(0) = u(R) = 0.

Finite differences (h = 0.01) and Sturm-sequence bisection; shifts are quoted against R = 150 on
the same grid, so the discretisation error (large for s-states at the Coulomb singularity)
cancels. Pure Python, no dependencies: python3 docs/box_effect.py (about 10 s).
"""


def count_below(energy, radius, centrifugal, h=0.01):
    """Eigenvalues below `energy` of the radial FD operator with the centrifugal coefficient."""
    m = int(radius / h) - 1
    h = radius / (m + 1)
    count, d = 0, 1.0
    for i in range(1, m + 1):
        r = i * h
        d = 2.0 / h**2 + centrifugal / r**2 - 1.0 / r - energy - (1.0 / (h**4 * d) if i > 1 else 0.0)
        if d == 0.0:
            d = 1e-300
        count += d < 0
    return count


def eigenvalue(k, radius, centrifugal):
    """The k-th (0-based) radial eigenvalue, by bisection on the Sturm count."""
    lo, hi = -5.0, 0.05
    for _ in range(45):
        mid = 0.5 * (lo + hi)
        if count_below(mid, radius, centrifugal) > k:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def shifts(k, centrifugal, radii):
    """Relative upward shift (%) of the level at each radius against radius 150."""
    ref = eigenvalue(k, 150.0, centrifugal)
    return [100.0 * (eigenvalue(k, r, centrifugal) - ref) / abs(ref) for r in radii]


def report(title, levels, radii):
    print(title + "  (radii " + ", ".join(f"{r:g}" for r in radii) + ")")
    for label, k, centrifugal in levels:
        print(f"  {label:10s}" + "".join(f"  {s:+9.4f}%" for s in shifts(k, centrifugal, radii)))


# 2D level n, |m|: radial index n - |m|; square half-widths 50 (discs 50, 70.71), 75, 80, 98, 100.
report("2D", [(f"n={n} |m|={m}", n - m, m * m - 0.25) for n in (2, 3) for m in range(n + 1)],
       (50.0, 70.71, 75.0, 80.0, 98.0, 100.0))
# 3D level n, l: radial index n - 1 - l; cube half-widths 40, 50 (balls 50, 86.6).
report("3D", [(f"n={n} l={l}", n - 1 - l, l * (l + 1)) for n in (2, 3) for l in range(n)],
       (40.0, 50.0, 86.6))
