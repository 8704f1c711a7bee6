"""The exact stationary distribution of the quantised hardware chain (small n).

What a hardware design samples differs from the Boltzmann distribution of the real-valued model:
its couplings are integer codes, its input saturates, its activation table is rounded, and the
comparator has a tie rule (:mod:`pbitsim.fixedpoint`, the one place for those rules). With an
ideal uniform random number per decision and the chromatic schedule of the cycle model
(``read_latency = 0``), the hardware is a Markov chain on the 2**n states whose one-step kernel is
a chromatic sweep with the comparator's probabilities; :func:`quantized_stationary` solves for its
stationary distribution. A design's own generator may still bias it (the published design's LFSR
does: ``docs/hardware-model.md``, section 7), which is what comparing samples with it reveals.

Diagnostics never import the board package: the design comes as the dict hardware samples record
in ``settings["runner"]["design"]``.
"""

from __future__ import annotations

import numpy as np

from pbitsim.couplings import Couplings
from pbitsim.diagnostics.kernels import _apply_right
from pbitsim.exact import all_states, boltzmann
from pbitsim.fixedpoint import FixedPointSpec, QuantizedCouplings, saturate_input
from pbitsim.samples import Samples

__all__ = [
    "QUANTIZED_MAX_N",
    "sample_design",
    "design_fixed_point",
    "quantized_p_up",
    "quantized_stationary",
]

#: Largest model whose quantised chain is solved exactly (2**12 states, a chromatic sweep each).
QUANTIZED_MAX_N = 12


def sample_design(samples: Samples) -> dict | None:
    """The hardware design a sample set records (``settings["runner"]["design"]``, as written by
    the hardware model and the board runner), or None."""
    runner = samples.settings.get("runner") if isinstance(samples.settings, dict) else None
    design = runner.get("design") if isinstance(runner, dict) else None
    if design is None and isinstance(samples.settings, dict):
        design = samples.settings.get("design")
    return design if isinstance(design, dict) and "fixed_point" in design else None


def quantized_p_up(q: QuantizedCouplings) -> np.ndarray:
    """P(s_i -> +1 | state) of the design's comparator with an ideal uniform R, (2**n, n).

    With the saturated input code I and the table entry T = table[|I|], R uniform on
    [0, 2**rng_bits): :func:`pbitsim.fixedpoint.decide_spin` gives +1 iff T > R for I >= 0
    (probability T / 2**r) and -1 iff T >= R for I < 0 (so +1 with 1 - (T + 1) / 2**r).
    """
    n = q.n
    S = all_states(n).astype(np.int64)
    rows = np.repeat(np.arange(n), np.diff(q.indptr))
    Jd = np.zeros((n, n), dtype=np.int64)
    Jd[rows, q.indices] = q.j_codes
    acc = S @ Jd.T + q.h_codes[None, :]
    i_code = saturate_input(acc, q.spec)
    t = np.asarray(q.table, dtype=np.float64)[np.abs(i_code)]
    scale = float(1 << q.spec.rng_bits)
    return np.where(i_code >= 0, t / scale, 1.0 - (t + 1.0) / scale)


def quantized_stationary(
    couplings: Couplings,
    spec: FixedPointSpec,
    *,
    solver: str = "auto",
    tol: float = 1e-13,
    max_sweeps: int = 200_000,
) -> np.ndarray:
    """Exact stationary distribution of the quantised hardware chain (n <= 12), observed after
    whole colour periods.

    One step is a chromatic sweep: colour classes 0..C-1 of ``couplings.coloring`` in order, each
    p-bit deciding with :func:`quantized_p_up` (the design's codes, saturation and table; an ideal
    uniform random number). This is what the cycle model computes with ``read_latency = 0``
    (warm-up edges only delay the start), recorded once per colour period.

    Parameters
    ----------
    couplings : Couplings
        The model (its beta is in the table, or folded into the codes, as ``spec`` says).
    spec : FixedPointSpec
    solver : {"auto", "direct", "power"}
        Dense linear solve of p P = p (auto: up to 1024 states) or power iteration of the sweep.
    tol, max_sweeps : float, int
        Power iteration stops when the L1 change of one sweep is below ``tol``.

    Raises
    ------
    ValueError
        n > 12, the couplings do not fit ``spec``, or the chain does not converge.
    """
    if couplings.n > QUANTIZED_MAX_N:
        raise ValueError(
            f"the exact quantised chain needs n <= {QUANTIZED_MAX_N} (2**n states); the model "
            f"has n = {couplings.n}"
        )
    if solver not in ("auto", "direct", "power"):
        raise ValueError(f"solver must be 'auto', 'direct' or 'power', not {solver!r}")
    pu = quantized_p_up(couplings.quantized(spec))
    sites = [int(i) for cls in couplings.color_classes() for i in cls]
    N = 1 << couplings.n
    if solver == "direct" or (solver == "auto" and N <= 1024):
        P = np.eye(N)
        for i in sites:
            P = _apply_right(P, pu[:, i], i)
        A = P.T - np.eye(N)
        A[-1, :] = 1.0
        rhs = np.zeros(N)
        rhs[-1] = 1.0
        try:
            pi = np.linalg.solve(A, rhs)
        except np.linalg.LinAlgError:
            raise ValueError(
                "the quantised chain has no unique stationary distribution (some p-bits never "
                "flip: saturated table entries?)"
            ) from None
        pi = np.clip(pi, 0.0, None)
        return pi / pi.sum()
    mu = boltzmann(couplings)  # a close start
    for _ in range(int(max_sweeps)):
        new = mu
        for i in sites:
            new = _apply_right(new, pu[:, i], i)
        change = float(np.abs(new - mu).sum())
        mu = new / new.sum()
        if change < tol:
            return mu
    raise ValueError(
        f"the quantised chain's stationary distribution did not converge in {max_sweeps} sweeps "
        f"(last change {change:.2g}): the model mixes too slowly for an exact reference"
    )


def design_fixed_point(design: dict) -> FixedPointSpec:
    """The fixed-point spec of a recorded design dict, after checking that the exact quantised
    chain models it (chromatic schedule, read latency 0).

    Raises
    ------
    ValueError
        Another schedule or a read latency > 0 (the chain then is not a chromatic sweep).
    """
    if design.get("schedule", "chromatic") != "chromatic":
        raise ValueError(
            f"the exact quantised chain models the chromatic schedule, not {design['schedule']!r}"
        )
    if int(design.get("read_latency", 0)) != 0:
        raise ValueError(
            f"the exact quantised chain models read_latency 0 (a chromatic sweep); this design "
            f"reads its neighbours {design['read_latency']} cycle(s) late: compare with "
            f"reference='boltzmann' or with simulated samples instead"
        )
    return FixedPointSpec.from_dict(dict(design["fixed_point"]))
