"""The box's own effect on the 2D hydrogen levels (H = -lap - 1/r, E_n = -1/(2n+1)^2).

A square [-D, D]^2 contains the disc of radius D and lies inside the disc of radius D*sqrt(2), so
(Dirichlet monotonicity) its eigenvalues lie between those two discs'. For a disc the problem
separates: psi = R(r) e^{i m phi}, u = sqrt(r) R, -u'' + ((m^2 - 1/4)/r^2 - 1/r) u = E u,
u(0) = u(R) = 0. Finite differences (h = 0.01) and Sturm-sequence bisection; shifts are quoted
against R = 150 on the same grid, so the discretisation error (large for m = 0 at the Coulomb
singularity) cancels. Pure Python, no dependencies: python3 docs/box_effect.py (about 10 s).
"""
import math
def count_below(E, M, h, m):
    # Sturm count of eigenvalues < E for the symmetric tridiagonal matrix
    off2 = 1.0/h**4; c = 0; d = 1.0
    for i in range(1, M+1):
        r = i*h
        a = 2.0/h**2 + (m*m - 0.25)/r**2 - 1.0/r - E
        d = a - (off2/d if i > 1 else 0.0)
        if d == 0.0: d = 1e-300
        if d < 0: c += 1
    return c
def eig(k, R, m, h=0.01):
    M = int(R/h) - 1; h = R/(M+1)
    lo, hi = -5.0, 0.05
    for _ in range(45):
        mid = 0.5*(lo+hi)
        if count_below(mid, M, h, m) > k: hi = mid
        else: lo = mid
    return 0.5*(lo+hi)
for n in (2, 3):
    exact = -1.0/(2*n+1)**2
    for m in range(0, n+1):
        vals = {R: eig(n-m, R, m) for R in (50.0, 70.71, 150.0)}
        ref = vals[150.0]
        print(f"n={n} |m|={m}  R=50: {vals[50.0]:.6f} ({100*(vals[50.0]-ref)/abs(ref):+.3f}%)  R=70.7: {vals[70.71]:.6f} ({100*(vals[70.71]-ref)/abs(ref):+.3f}%)  R=150: {ref:.6f}  exact {exact:.6f}")
print("R = 100, 80:")
for n in (2, 3):
    for m in range(0, n+1):
        ref = eig(n-m, 150.0, m)
        for R in (80.0, 100.0):
            v = eig(n-m, R, m); print(f"  n={n} |m|={m} R={R}: {100*(v-ref)/abs(ref):+.4f}%")

# 3D (E_n = -1/(4 n^2)): u = r R, -u'' + (l(l+1)/r^2 - 1/r) u = E u; a cube [-D, D]^3 lies between
# the balls of radius D and D*sqrt(3).
def count_below_3d(E, M, h, l):
    off2 = 1.0/h**4; c = 0; d = 1.0
    for i in range(1, M+1):
        r = i*h
        d = 2.0/h**2 + l*(l+1)/r**2 - 1.0/r - E - (off2/d if i > 1 else 0.0)
        if d == 0.0: d = 1e-300
        if d < 0: c += 1
    return c
def eig_3d(k, R, l, h=0.01):
    M = int(R/h) - 1; h = R/(M+1)
    lo, hi = -5.0, 0.05
    for _ in range(45):
        mid = 0.5*(lo+hi)
        if count_below_3d(mid, M, h, l) > k: hi = mid
        else: lo = mid
    return 0.5*(lo+hi)
print("3D:")
for n in (2, 3):
    for l in range(0, n):
        ref = eig_3d(n-1-l, 150.0, l)
        shifts = [100*(eig_3d(n-1-l, R, l)-ref)/abs(ref) for R in (40.0, 50.0, 86.6)]
        print(f"  n={n} l={l}: R=40 {shifts[0]:+.3f}%  R=50 {shifts[1]:+.3f}%  R=86.6 {shifts[2]:+.4f}%")
