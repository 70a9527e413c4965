"""Exact solvers for the small T x T problems of gradient balancers, all posed on the Gramian G = J J^T.

Every problem here depends on J only through G, so it costs O(T^3) whatever the parameter count.
Problems are solved in float64 on the host with finite-termination methods:

- :func:`min_norm_weights`: min ||J^T w|| over the simplex (MGDA). Closed form for two tasks; otherwise
  the non-negative least-squares problem ``min_{u>=0} ||R u||^2 + (1^T u - 1)^2`` (R^T R = G), whose
  solution is ``u* = w* / (1 + ||J^T w*||^2)``, solved exactly by Lawson-Hanson NNLS.
- :func:`project_to_dual_cone`: the projection of ``J^T u`` onto the dual cone {x: J x >= 0}, i.e.
  ``argmin_{v >= u} v^T G v`` (Quinton & Rey, 2024, Prop. 1), as NNLS in ``v - u``.
- :func:`cagrad_weights`: the CAGrad dual ``min_{w in simplex} w^T G 1/T + c ||g0|| ||J^T w||``,
  in closed form on the support of its solution (:func:`cagrad_on_supports`), or by a
  one-dimensional root search over a family of min-norm problems where that does not apply.
- :func:`fair_weights`: the alpha-fair condition ``G w = w^(-1/alpha)`` (Nash-MTL for alpha=1, FairGrad),
  by damped Newton on the strictly convex potential whose gradient it is.

A problem without a solution raises :class:`SolverError`; callers warn and use a documented fallback.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

from mtlrun.lazy import lazy_module

optimize = lazy_module("scipy.optimize")  # loaded by the first method that solves a problem


class SolverError(RuntimeError):
    """A small optimisation problem has no (finite) solution or did not converge."""


def symmetric(G: np.ndarray) -> np.ndarray:
    return 0.5 * (G + G.T)


def scale_of(G: np.ndarray) -> float:
    """Mean squared gradient norm, trace(G)/T: the natural unit for a scale-invariant problem."""
    return float(np.trace(G)) / G.shape[0]


def factor(G: np.ndarray) -> np.ndarray:
    """R (T x T) with R^T R = G: the task gradients expressed in an orthonormal basis of their span."""
    eigenvalues, vectors = np.linalg.eigh(symmetric(G))
    return np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None] * vectors.T


def min_norm_weights(G: np.ndarray) -> np.ndarray:
    """argmin_{w in simplex} w^T G w: the min-norm point of the convex hull of the task gradients."""
    T = G.shape[0]
    if T == 1:
        return np.ones(1)
    scale = scale_of(G)
    if not scale > 0:
        return np.full(T, 1.0 / T)  # every gradient is zero: every point of the simplex is optimal
    G = symmetric(G) / scale
    if T == 2:
        # min over gamma of ||gamma g1 + (1 - gamma) g2||^2, clipped to [0, 1]
        denominator = G[0, 0] + G[1, 1] - 2.0 * G[0, 1]
        gamma = 0.5 if denominator <= 1e-12 else float(np.clip((G[1, 1] - G[0, 1]) / denominator, 0.0, 1.0))
        return np.array([gamma, 1.0 - gamma])
    A = np.vstack([factor(G), np.ones((1, T))])
    b = np.zeros(T + 1)
    b[-1] = 1.0
    u, _ = optimize.nnls(A, b, maxiter=50 * T)
    total = u.sum()
    if not total > 0:
        raise SolverError("min-norm problem: NNLS returned no point of the simplex")
    return u / total


def project_to_dual_cone(G: np.ndarray, U: np.ndarray) -> np.ndarray:
    """Row-wise ``argmin_{v >= u} v^T G v`` for each row u of U (T' x T): weights of the projections."""
    T = G.shape[0]
    scale = scale_of(G)
    U = np.atleast_2d(U).astype(np.float64)
    if not scale > 0:
        return U.copy()
    R = factor(G / scale)
    out = np.empty_like(U)
    for k, u in enumerate(U):
        # v = u + lam, lam >= 0: min ||R lam + R u||^2
        lam, _ = optimize.nnls(R, -R @ u, maxiter=50 * T)
        out[k] = u + lam
    return out


def cagrad_weights(G: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """Solve the CAGrad dual (Liu et al., 2021, Eq. 5); return (w, rho/||g_w||).

    ``min_{w in simplex} F(w) = w^T G 1/T + rho ||J^T w||`` with ``rho = c ||g0||``, g0 the mean gradient.
    At the optimum w*, with tau = ||J^T w*|| / rho, w* is also the min-norm point of the hull of the
    shifted gradients ``g_i + tau g0`` (the KKT conditions coincide), so we search the root in tau of
    ``psi(tau) = ||J^T w(tau)|| - rho tau``, where w(tau) is that min-norm point (an exact NNLS).
    psi(0) >= 0 and psi(tau) < 0 once rho tau exceeds the largest gradient norm, so a root is bracketed.
    The closed form of :func:`cagrad_on_supports` answers first (3x faster at T=4); the search
    decides the cases it leaves (a singular Gramian on the support, an optimal value <= 0).
    The update is then ``g0 + (rho / ||g_w||) g_w``; the ratio is returned as the second value
    (0 when the hull contains a point with F <= 0 at g_w = 0, i.e. at a Pareto-stationary point).
    """
    T = G.shape[0]
    scale = scale_of(G)
    if not scale > 0 or c == 0:
        return np.full(T, 1.0 / T), 0.0
    G = symmetric(G) / scale
    ones = np.ones(T) / T
    a = G @ ones  # inner products of each gradient with the mean g0
    g0_sq = float(ones @ a)
    if not g0_sq > 0:
        return np.full(T, 1.0 / T), 0.0  # the mean gradient is zero: no conflict-averse step exists
    rho = c * math.sqrt(g0_sq)
    exact = cagrad_on_supports(G, a, rho)
    if exact is not None:
        return exact

    def weights_at(tau: float) -> np.ndarray:
        shifted = G + tau * (np.outer(a, np.ones(T)) + np.outer(np.ones(T), a)) + tau * tau * g0_sq
        return min_norm_weights(shifted)

    def psi(tau: float) -> float:
        w = weights_at(tau)
        return math.sqrt(max(float(w @ G @ w), 0.0)) - rho * tau

    high = math.sqrt(float(np.max(np.diag(G)))) / rho * (1.0 + 1e-9) + 1e-12
    low = high * 1e-9
    if psi(low) <= 0.0:
        # the optimum is at g_w = 0 (the hull holds a point with w^T G 1 <= 0 and zero norm): update = g0
        return weights_at(0.0), 0.0
    tau = optimize.brentq(psi, low, high, xtol=1e-14 * high, rtol=1e-12, maxiter=200)
    w = weights_at(tau)
    norm = math.sqrt(max(float(w @ G @ w), 0.0))
    if not norm > 0:
        return w, 0.0
    return w, rho / norm


#: CAGrad's closed form is tried on every support up to this many tasks (2^T - 1 supports)
MAX_ENUMERATED_TASKS = 6
#: smallest ||g_w|| (in units of the RMS task-gradient norm) the closed form answers for
MIN_CLOSED_FORM_NORM = 1e-4


def cagrad_on_supports(G: np.ndarray, a: np.ndarray, rho: float) -> tuple[np.ndarray, float] | None:
    """The CAGrad dual's optimum in closed form, found by trying each support; None if none fits.

    On a support S (w_S > 0) the stationarity ``a_S + rho (G w)_S / n = lambda 1`` with
    ``n = ||J^T w||`` gives, with ``u = G_SS^-1 1`` and ``v = G_SS^-1 a_S``, the quadratic
    ``(1^T u) lambda^2 - 2 (1^T v) lambda + a_S^T v - rho^2 = 0`` for lambda; with ``d`` its
    discriminant over 4, ``w_S = (lambda u - v) / sqrt(d)`` and ``rho / n = sqrt(d)``. The
    problem is convex, so a point satisfying the KKT conditions (``w_S > 0`` and
    ``a_i + sqrt(d) (G w)_i >= lambda`` off S) is its optimum (:func:`cagrad_kkt_points`). An
    ``n`` near 0 or an optimal value <= 0 (where the hull may hold 0 and the optimum is not
    unique) is left to the root search of :func:`cagrad_weights`, with its convention for that
    case (update g0); so is a problem where no support qualifies (a singular ``G_SS``).
    """
    if G.shape[0] > MAX_ENUMERATED_TASKS:
        return None
    tol = 1e-9 * (1.0 + float(np.max(np.abs(a))) + rho)
    for w, root in cagrad_kkt_points(G, a, rho, tol):
        norm = rho / root
        if norm < MIN_CLOSED_FORM_NORM or not float(a @ w) + rho * norm > tol:
            return None
        return w / w.sum(), root
    return None


def cagrad_kkt_points(G: np.ndarray, a: np.ndarray, rho: float, tol: float) -> Iterator[tuple[np.ndarray, float]]:
    """Points ``(w, rho / n)`` of the CAGrad dual that satisfy its KKT conditions, support by support.

    The T vertices ``w = e_i`` come first, in one vectorised test (there ``n = sqrt(G_ii)``,
    ``lambda = a_i + rho n``, and the conditions read ``a_j + rho G_ij / n >= lambda`` for every j):
    under a strong conflict one task's gradient alone is the common optimum. Then the larger
    supports, from the largest down (at most ``2^T - T - 1`` small solves).
    """
    T = G.shape[0]
    norms = np.sqrt(np.clip(np.diag(G), 0.0, None))
    positive = norms > 0
    gradients = a[None, :] + rho * G / np.where(positive, norms, 1.0)[:, None]  # row i: at e_i, times n/rho
    vertices = positive & np.all(gradients >= (a + rho * norms)[:, None] - tol, axis=1)
    for i in np.flatnonzero(vertices):
        yield np.eye(T)[i], rho / float(norms[i])
    for size in range(T, 1, -1):
        for support in itertools.combinations(range(T), size):
            idx = list(support)
            try:
                uv = np.linalg.solve(G[np.ix_(idx, idx)], np.stack([np.ones(size), a[idx]], axis=1))
            except np.linalg.LinAlgError:
                continue
            u, v = uv[:, 0], uv[:, 1]
            su, sv = float(u.sum()), float(v.sum())
            d = sv * sv - su * (float(a[idx] @ v) - rho * rho)
            if not (su > 0 and d > 0) or not np.all(np.isfinite(uv)):
                continue
            root = math.sqrt(d)
            lam = (sv + root) / su
            w_s = (lam * u - v) / root
            if np.any(w_s <= 0):
                continue
            w = np.zeros(T)
            w[idx] = w_s
            gradient = a + root * (G @ w)  # of the dual objective: a + (rho / n) G w
            if np.all(gradient >= lam - tol) and np.all(np.abs(gradient[idx] - lam) <= tol):
                yield w, root


def fair_weights(G: np.ndarray, alpha: float, *, tol: float = 1e-10, max_iter: int = 100) -> np.ndarray:
    """Positive w with ``(G w)_i = w_i^(-1/alpha)`` for every task (alpha=1: Nash-MTL's ``G w = 1/w``).

    The condition is the stationarity of the strictly convex potential
    ``Phi(w) = 1/2 w^T G w - sum_i h(w_i)`` with ``h'(w) = w^(-1/alpha)``, minimised by Newton's method
    with a fraction-to-boundary rule (w stays positive) and Armijo backtracking. G is normalised by its
    scale k first and the solution rescaled by ``k^(-1/(1 + 1/alpha))``. Raises SolverError when no
    positive solution exists (e.g. a non-negative combination of the gradients is zero) or Newton fails.
    """
    if not alpha > 0:
        raise ValueError(f"alpha={alpha} must be > 0")
    T = G.shape[0]
    p = 1.0 / alpha
    k = scale_of(G)
    if not k > 0:
        raise SolverError("alpha-fair weights: every task gradient is zero")
    G = symmetric(G) / k

    def h(w: np.ndarray) -> np.ndarray:
        return np.log(w) if p == 1.0 else w ** (1.0 - p) / (1.0 - p)

    def potential(w: np.ndarray) -> float:
        return float(0.5 * w @ G @ w - h(w).sum())

    total = float(np.ones(T) @ G @ np.ones(T))
    if not total > 0:
        raise SolverError("alpha-fair weights: the sum of the task gradients is zero")
    w = np.full(T, (T / total) ** (1.0 / (1.0 + p)))  # best multiple of the ones vector
    value = potential(w)
    for _ in range(max_iter):
        Gw = G @ w
        residual = Gw * w**p - 1.0
        if np.max(np.abs(residual)) < tol:
            return w * k ** (-1.0 / (1.0 + p))
        gradient = Gw - w ** (-p)
        hessian = G + np.diag(p * w ** (-p - 1.0))
        try:
            step = -np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError as ex:
            raise SolverError(f"alpha-fair weights: singular Newton system ({ex})") from ex
        shrinking = step < 0
        t = min(1.0, 0.99 * float(np.min(-w[shrinking] / step[shrinking]))) if shrinking.any() else 1.0
        slope = float(gradient @ step)
        while True:
            candidate = w + t * step
            new_value = potential(candidate)
            # the last term absorbs rounding once the Newton decrement is at machine precision
            if new_value <= value + 1e-4 * t * slope + 1e-13 * max(1.0, abs(value)) or t < 1e-12:
                break
            t *= 0.5
        if t < 1e-12 or not np.all(np.isfinite(candidate)):
            break
        w, value = candidate, new_value
        if float(np.max(w)) > 1e12:
            break  # the potential is unbounded below along a null direction of G
    raise SolverError("alpha-fair weights: Newton did not converge (are the task gradients linearly dependent?)")


#: relative ridge added to the Gramian when the alpha-fair condition has no solution
FAIR_RIDGE = 1e-4


def fair_weights_with_fallback(G: np.ndarray, alpha: float) -> tuple[np.ndarray, str | None]:
    """:func:`fair_weights`, or on failure the solution for ``G + 1e-4 trace(G)/T I`` and the reason.

    The ridge makes G positive definite, where a solution always exists; if even that fails (non-finite
    input), the weights are 1/T. The caller warns whenever the reason is not None.
    """
    try:
        return fair_weights(G, alpha), None
    except SolverError as ex:
        ridge = FAIR_RIDGE * max(scale_of(G), 1e-30)
        try:
            return fair_weights(G + ridge * np.eye(len(G)), alpha), str(ex)
        except SolverError:
            return np.full(len(G), 1.0 / len(G)), f"{ex}; the ridge-regularised problem failed too (weights 1/T)"
