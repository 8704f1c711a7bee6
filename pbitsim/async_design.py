"""Choosing an un-coloured design: how far from Boltzmann is an "async-random" p-bit machine?

The designer's question: *what enable probability p keeps KL(stationary || Boltzmann) below
epsilon on this model?* It is answered exactly, for small models (n <= 10), from the stationary
distribution of the *quantised* chain of the cycle model (:mod:`pbitsim.sim.hardware`) with read
latency L = 0 and ideal generators (the 16-bit enable number and the r-bit random number of every
p-bit independent and uniform at every cycle):

* every cycle every p-bit independently acts with probability p = ENABLE / 2**16 and, if it acts,
  takes +1 with the probability its comparator gives with R uniform on [0, 2**r) (T[|I|] / 2**r
  for I >= 0, (2**r - 1 - T[|I|]) / 2**r for I < 0: table rounding and tie rule included), all
  from the state at the start of the cycle; so the one-cycle kernel is

      K_p[x, y] = prod_i ((1 - p) 1{y_i = x_i} + p P_i(y_i | x));

* its stationary distribution pi_p is compared with the exact Boltzmann distribution of the
  quantised couplings (``reference="quantised"``, the distribution the hardware is meant to
  sample) or of the model's real-valued couplings (``reference="model"``);
* as p -> 0 the chain becomes random-scan Gibbs with the quantised conditionals; its stationary
  distribution sets the *floor* of the KL, which only the quantisation (table rounding, the tie
  rule, and for ``reference="model"`` the rounding of J and h) leaves.

:func:`max_enable_probability` checks that the KL is monotone in p on a grid, then bisects over
the ENABLE register values (integers, so the answer is exact among what the hardware can hold).
Real generators are not ideal (the published LFSR is strongly correlated from one cycle to the
next, ``docs/hardware-model.md`` section 7); xorshift64 is close to ideal (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pbitsim import exact
from pbitsim.board.design import ENABLE_BITS, enable_probability
from pbitsim.couplings import Couplings
from pbitsim.fixedpoint import FixedPointSpec

__all__ = [
    "MAX_N",
    "EnableChoice",
    "quantised_conditionals",
    "async_random_kernel",
    "random_scan_kernel",
    "stationary_distribution",
    "reference_distribution",
    "async_random_kl",
    "kl_floor",
    "max_enable_probability",
]

#: Largest model these exact calculations accept (2**n x 2**n dense kernels).
MAX_N = 10
_FULL = 1 << ENABLE_BITS


def _spec_of(couplings: Couplings, spec: FixedPointSpec | None) -> FixedPointSpec:
    """The spec to use: given, else the model's own, else the default (as method="hardware")."""
    if spec is not None:
        if not isinstance(spec, FixedPointSpec):
            raise TypeError(f"spec must be a FixedPointSpec, not {spec!r}")
        return spec
    return couplings.fixed_point or FixedPointSpec.default()


def _check(couplings: Couplings) -> None:
    if not isinstance(couplings, Couplings):
        raise TypeError(f"couplings must be a Couplings, not {couplings!r}")
    if couplings.n > MAX_N:
        raise ValueError(
            f"exact async-random statistics need n <= {MAX_N} (2**n x 2**n kernels), "
            f"not n = {couplings.n}"
        )


def quantised_conditionals(couplings: Couplings, spec: FixedPointSpec | None = None) -> np.ndarray:
    """P(s_i = +1 | x) of the fixed-point p-bit with a uniform r-bit random number, for every
    state x (:func:`pbitsim.exact.all_states` order): float64 (2**n, n)."""
    _check(couplings)
    spec = _spec_of(couplings, spec)
    q = couplings.quantized(spec)
    n = q.n
    J = np.zeros((n, n), dtype=np.int64)
    J[np.repeat(np.arange(n), np.diff(q.indptr)), q.indices] = q.j_codes
    S = exact.all_states(n).astype(np.int64)
    acc = S @ J.T + q.h_codes[None, :]  # exact integer sums
    i_code = np.clip(acc, -spec.input_max, spec.input_max)
    t = q.table[np.abs(i_code)].astype(np.float64)
    full = float(1 << spec.rng_bits)
    return np.where(i_code >= 0, t, full - 1.0 - t) / full


class _Chain:
    """The per-p-bit factors of the async-random kernel of one model, computed once: for p-bit
    i, P_i(y_i | x) and 1{y_i = x_i} as (N, N) arrays (rows x, columns y)."""

    def __init__(self, couplings: Couplings, spec: FixedPointSpec | None) -> None:
        cond = quantised_conditionals(couplings, spec)
        self.n = couplings.n
        bits = (np.arange(cond.shape[0])[:, None] >> np.arange(self.n)) & 1  # 1 = +1
        self.update = [
            np.where(bits[:, i][None, :] == 1, cond[:, i][:, None], 1.0 - cond[:, i][:, None])
            for i in range(self.n)
        ]
        self.same = [
            (bits[:, i][:, None] == bits[:, i][None, :]).astype(np.float64) for i in range(self.n)
        ]

    def kernel(self, p: float) -> np.ndarray:
        K = (1.0 - p) * self.same[0] + p * self.update[0]
        for same, upd in zip(self.same[1:], self.update[1:], strict=True):
            K *= (1.0 - p) * same + p * upd
        return K

    def random_scan(self) -> np.ndarray:
        K = np.zeros_like(self.same[0])
        for i, upd in enumerate(self.update):
            keep = np.ones_like(K)
            for k in range(self.n):
                if k != i:
                    keep *= self.same[k]
            K += keep * upd / self.n
        return K


def async_random_kernel(
    couplings: Couplings, p: float, spec: FixedPointSpec | None = None
) -> np.ndarray:
    """One-cycle transition matrix K_p (rows: from, columns: to) of "async-random" with L = 0
    and ideal generators (module docstring). ``p`` in [0, 1]."""
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p must be in [0, 1], not {p!r}")
    return _Chain(couplings, spec).kernel(float(p))


def random_scan_kernel(couplings: Couplings, spec: FixedPointSpec | None = None) -> np.ndarray:
    """Random-scan Gibbs with the quantised conditionals: (1/n) sum_i (update p-bit i), the
    p -> 0 limit of :func:`async_random_kernel` (its generator divided by p, plus identity)."""
    return _Chain(couplings, spec).random_scan()


def stationary_distribution(K: np.ndarray) -> np.ndarray:
    """The stationary distribution pi = pi K of a transition matrix (rows sum to 1).

    Raises
    ------
    ValueError
        The chain has no unique stationary distribution (the linear system is singular).
    """
    N = K.shape[0]
    A = K.T - np.eye(N)
    A[-1, :] = 1.0  # replace one (redundant) balance equation by the normalisation
    b = np.zeros(N)
    b[-1] = 1.0
    try:
        pi = np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        raise ValueError("the chain has no unique stationary distribution") from None
    if not np.allclose(pi @ K, pi, atol=1e-12) or pi.min() < -1e-12:
        raise ValueError("the chain has no unique stationary distribution (solve failed)")
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


def reference_distribution(
    couplings: Couplings, spec: FixedPointSpec | None = None, reference: str = "quantised"
) -> np.ndarray:
    """The Boltzmann distribution the KL is measured against: of the quantised couplings
    (``"quantised"``: the integers the hardware holds, in real units) or of the model
    (``"model"``)."""
    _check(couplings)
    if reference == "model":
        return exact.boltzmann(couplings)
    if reference != "quantised":
        raise ValueError(f"reference must be 'quantised' or 'model', not {reference!r}")
    q = couplings.quantized(_spec_of(couplings, spec))
    j, h, beta = q.effective_couplings()
    return exact.boltzmann(Couplings(couplings.indptr, couplings.indices, j, h, beta))


def _kl(pi: np.ndarray, ref: np.ndarray) -> float:
    return exact.kl_divergence(pi, ref)


def async_random_kl(
    couplings: Couplings, p: float, spec: FixedPointSpec | None = None, reference="quantised"
) -> float:
    """KL(pi_p || reference) in nats: the exact asymptotic bias of "async-random" at enable
    probability p (L = 0, ideal generators)."""
    pi = stationary_distribution(async_random_kernel(couplings, p, spec))
    return _kl(pi, reference_distribution(couplings, spec, reference))


def kl_floor(couplings: Couplings, spec: FixedPointSpec | None = None, reference="quantised"):
    """KL of the p -> 0 limit (random-scan Gibbs with the quantised conditionals): the bias the
    quantisation alone leaves, which no enable probability removes."""
    return _floor(_Chain(couplings, spec), reference_distribution(couplings, spec, reference))


def _floor(chain: _Chain, ref: np.ndarray) -> float:
    return _kl(stationary_distribution(chain.random_scan()), ref)


@dataclass(frozen=True)
class EnableChoice:
    """The answer of :func:`max_enable_probability`.

    Attributes
    ----------
    threshold : int
        The largest ENABLE register value whose KL is <= epsilon.
    p : float
        threshold / 2**16.
    kl : float
        KL at that threshold; ``kl_next`` at threshold + 1 (None when threshold = 2**16).
    epsilon, floor : float
        The bound asked for; the quantisation floor (:func:`kl_floor`).
    cycles_per_step : int
        round(1 / p): cycles per Runner step at that p.
    grid : tuple of (p, KL)
        The grid points computed (ascending p; monotone, all above the answer but the first).
    """

    threshold: int
    p: float
    kl: float
    kl_next: float | None
    epsilon: float
    floor: float
    cycles_per_step: int
    grid: tuple = field(repr=False)


def max_enable_probability(
    couplings: Couplings,
    epsilon: float,
    spec: FixedPointSpec | None = None,
    reference: str = "quantised",
    grid_points: int = 33,
) -> EnableChoice:
    """The largest enable probability p (an ENABLE register value) with KL(pi_p || Boltzmann)
    <= ``epsilon``, for "async-random" with L = 0 and ideal generators (module docstring).

    Parameters
    ----------
    couplings : Couplings
        n <= 10 p-bits.
    epsilon : float
        Largest acceptable KL, nats.
    spec : FixedPointSpec, optional
        Default: the model's own spec, else :meth:`FixedPointSpec.default`.
    reference : {"quantised", "model"}
        Boltzmann distribution of the quantised couplings, or of the real-valued model.
    grid_points : int
        Thresholds round(2**16 * 2**(-k/2)) (k = 0 .. grid_points - 1, at least 1): the KL is
        computed on them from p = 1 down to the first one that passes, checked to be monotone
        there, and the answer is bisected between the last two.

    Raises
    ------
    ValueError
        KL is not monotone in p on the grid above the answer (bisection would not be safe: the
        message gives the grid), or epsilon is below what the smallest p reaches (the floor is
        given).
    """
    epsilon = float(epsilon)
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, not {epsilon!r}")
    ref = reference_distribution(couplings, spec, reference)
    chain = _Chain(couplings, spec)
    cache: dict[int, float] = {}

    def kl(th: int) -> float:
        if th not in cache:
            K = chain.kernel(enable_probability(th))
            cache[th] = _kl(stationary_distribution(K), ref)
        return cache[th]

    # Grid: thresholds round(2**16 * 2**(-k/2)), from p = 1 down until one passes. Close to the
    # floor the async bias and the quantisation bias can partly cancel, so KL need not be
    # monotone there; the bisection needs it monotone above the answer, which is what the grid
    # checks (every point of it is above the answer but the last).
    ths = sorted({max(1, round(_FULL * 2.0 ** (-k / 2))) for k in range(int(grid_points))})
    grid: list[tuple[int, float]] = []
    for t in reversed(ths):
        grid.insert(0, (t, kl(t)))
        if grid[0][1] <= epsilon:
            break
    floor = _floor(chain, ref)
    if grid[0][1] <= epsilon:
        low = grid[0][0]
        high = grid[1][0] if len(grid) > 1 else _FULL + 1  # p = 1 passes: the answer
    elif kl(1) <= epsilon:  # below the grid (few grid points): bisect down to threshold 1
        low, high = 1, grid[0][0]
    else:
        raise ValueError(
            f"no enable probability reaches KL <= {epsilon:g}: the smallest (2**-16) gives "
            f"{kl(1):.4g}; the quantisation floor is {floor:.4g} nats"
        )
    for (p0, k0), (p1, k1) in zip(grid, grid[1:], strict=False):
        if k1 < k0 * (1 - 1e-9) - 1e-15:
            table = ", ".join(f"p={t / _FULL:.3g}: {v:.3g}" for t, v in grid)
            raise ValueError(
                f"KL is not monotone in p on this model (it falls from {k0:.4g} at p = "
                f"{p0 / _FULL:.4g} to {k1:.4g} at p = {p1 / _FULL:.4g}): bisection would not be "
                f"safe; grid: {table}"
            )
    while high - low > 1:  # invariant: kl(low) <= epsilon < kl(high) (high = 2**16 + 1: none)
        mid = (low + high) // 2
        if kl(mid) <= epsilon:
            low = mid
        else:
            high = mid
    p = enable_probability(low)
    return EnableChoice(
        threshold=low,
        p=p,
        kl=kl(low),
        kl_next=kl(low + 1) if low < _FULL else None,
        epsilon=epsilon,
        floor=floor,
        cycles_per_step=max(1, round(1.0 / p)),
        grid=tuple((t / _FULL, v) for t, v in grid),
    )
