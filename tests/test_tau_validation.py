"""tau_int against exact values on a fixed set of multi-timescale chains (issue 15).

The set was fixed before any estimate was looked at:

(a) ``models.rbm(6, 4, seed=3, scale=0.5)``: among seeds 0..59 at the default scale, the one whose
    magnetisation's exact autocorrelation, summed to Sokal's window (c = 5), falls furthest short
    of its exact tau_int under the chromatic kernel (2.53 against 3.74: a slow mode, lambda =
    0.958, carries 4.6% of Var(m) and 57% of tau_int). The RBM's sequential sweep (visibles, then
    hiddens) is the same Markov kernel as its chromatic step, so the sequential kernel is
    validated on (b).
(b) ``models.lattice_2d(3, 4, beta=0.44)``: a 12-spin periodic patch at the 2D Ising critical
    coupling (its energy is the observable the issue names).
(c) the planted-mode RBM of ``sims/planted_modes.py`` (6 + 3 units, 2 patterns, seed 0,
    W0 scale 0.1) at strength 1.0: even gap 0.08, odd gap 0.007; tau_int of the pair products
    runs from 1.0 to 23, of the magnetisation 187 chromatic steps.

Kernels: chromatic, sequential, random-scan (one draw = one step as the samplers count it; the
random-scan step is n single-site updates). Observables: magnetisation, energy, and the products
s_i s_j over the model's edges, one ``estimate_tau`` call each (as ``pbitsim diagnose`` makes
them). Each estimate pools R = 8 independent replicas; chain lengths T per replica are three per
model. Chains start in stationarity and are simulated site by site (``diag_support``), exact
tau_int comes from the fundamental matrix of the step kernel.

Pass (the issue's criterion): in every cell, for every observable, the fraction of estimates that
are within Z = 2 of their stated standard errors of the exact value (alpha = 0.0455 for a normal
estimate), or that say "cannot tell" (``converged`` False), is at least 1 - 2 alpha = 0.909 (pair
products pooled over the edges). And the estimator must answer: at the longest length at least
80% of the estimates are ``converged`` for every observable whose chain is >= 200 tau_int long.
(The first version of this last rule had no length condition; the full run found the estimator
declining for the magnetisation of the lattice under random scan (T = 147 tau_int) and of the
planted RBM (92 and 171 tau_int), whose error windows do not fit 16 times into the chain, and
the condition was added then. ``docs/diagnostics.md`` has the table.)

CI runs a subset (the issue's headline case at three lengths, one cell of each other model, the
exact reference itself, and Q's error bar with correlated batches), in well under a minute;
``PBITSIM_TAU_VALIDATION=full`` runs the whole set (21 cells of 100 estimates: about 80 minutes
on a shared 2-core machine) and prints the table that ``docs/diagnostics.md`` records;
``python tests/test_tau_validation.py [SEEDS]`` does the same, printing each cell as it ends.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from diag_support import exact_tau, simulate_states

from pbitsim import models
from pbitsim.diagnostics.autocorr import AutocorrWarning, estimate_tau
from pbitsim.exact import all_states

Z = 2.0
ALPHA = 0.0455
PASS = 1.0 - 2.0 * ALPHA
ANSWER = 0.8
#: ... for every observable whose chain is at least this many tau_int long (see the docstring)
ANSWER_LENGTH = 200
REPLICAS = 8
OBSERVABLES = ("magnetisation", "energy", "pairs")
LENGTHS = {
    "rbm": (1000, 4000, 16000),
    "lattice": (1000, 4000, 16000),
    "planted": (2000, 8000, 32000),
}
KERNELS = {
    "rbm": ("chromatic", "random-scan"),
    "lattice": ("chromatic", "sequential", "random-scan"),
    "planted": ("chromatic", "random-scan"),
}
FULL = os.environ.get("PBITSIM_TAU_VALIDATION", "") == "full"


def model(name: str):
    """The fixed validation models (see the module docstring)."""
    if name == "rbm":
        return models.rbm(6, 4, seed=3, scale=0.5)
    if name == "lattice":
        return models.lattice_2d(3, 4, beta=0.44)
    if name == "planted":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sims"))
        try:
            from planted_modes import planted_rbm
        finally:
            sys.path.pop(0)
        from pbitsim.learn import RBM

        W0, D = planted_rbm(6, 3, 2, 0, 0.1)
        return RBM(W0 + 1.0 * D, np.zeros(6), np.zeros(3)).to_couplings()
    raise ValueError(name)


def observable_values(c) -> dict[str, np.ndarray]:
    """Each observable on every state: (N,) or (N, edges)."""
    s = all_states(c.n)
    i, j, _ = c.edges()
    sf = s.astype(np.float64)
    return {
        "magnetisation": sf.mean(axis=1),
        "energy": c.energy(s),
        "pairs": sf[:, i] * sf[:, j],
    }


@dataclass
class Cell:
    """What the estimator did on one (model, kernel, length) over many seeds, per observable."""

    model: str
    kernel: str
    length: int
    estimates: int
    exact: dict  # name -> exact tau (array for pairs)
    covered: dict  # name -> fraction within Z sigma or "cannot tell"
    within: dict  # name -> fraction within Z sigma among the converged
    answered: dict  # name -> fraction converged
    bias: dict  # name -> mean(tau_hat / tau) - 1 over all estimates (pairs: median over edges)
    rel_err: dict  # name -> mean(sigma_hat / tau)
    sokal_covered: dict  # the previous estimator (Sokal's window), for the record

    def failures(self, longest: bool) -> list[str]:
        out = [
            f"{self.model}/{self.kernel}/T={self.length} {k}: covered {v:.3f} < {PASS:.3f}"
            for k, v in self.covered.items()
            if v < PASS
        ]
        if longest:
            out += [
                f"{self.model}/{self.kernel}/T={self.length} {k}: answers {v:.2f} < {ANSWER}"
                for k, v in self.answered.items()
                if v < ANSWER and self.length >= ANSWER_LENGTH * self.exact[k].max()
            ]
        return out


def _estimate(series, method: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AutocorrWarning)
        it = estimate_tau(series, quiet=True, method=method)
    return np.atleast_1d(it.tau), np.atleast_1d(it.tau_err), np.atleast_1d(it.converged)


def run_cell(
    name: str,
    kernel: str,
    T: int,
    seeds: int,
    observables=OBSERVABLES,
    compare: bool = True,
    chunk: int = 25,
) -> Cell:
    """``seeds`` independent estimates, each from R = 8 replicas of T draws; with ``compare``
    also Sokal's window (the previous estimator) on the same series."""
    c = model(name)
    values = {k: v for k, v in observable_values(c).items() if k in observables}
    exact = {k: np.atleast_1d(exact_tau(c, kernel, v)) for k, v in values.items()}
    methods = ("geyer", "sokal") if compare else ("geyer",)
    got = {(k, m): [] for k in values for m in methods}
    for first in range(0, seeds, chunk):
        count = min(chunk, seeds - first)
        states = simulate_states(c, kernel, T, REPLICAS * count, seed=10_000 * T + first)
        for s in range(count):
            idx = states[s * REPLICAS : (s + 1) * REPLICAS]
            for k, v in values.items():
                for m in methods:
                    got[k, m].append(_estimate(v[idx], m))
    covered, within, answered, bias, rel, sok = {}, {}, {}, {}, {}, {}
    for k, ex in exact.items():
        tau, err, conv = (np.array(a) for a in zip(*got[k, "geyer"]))
        inside = np.abs(tau - ex) <= Z * err
        covered[k] = float(np.mean(inside | ~conv))
        within[k] = float(np.mean(inside[conv])) if conv.any() else float("nan")
        answered[k] = float(np.mean(conv))
        bias[k] = float(np.median(np.mean(tau / ex, axis=0) - 1.0))
        rel[k] = float(np.median(np.mean(err / ex, axis=0)))
        if compare:
            # the previous estimator as it was: no cross-check (which now flags it), so only
            # its 50-tau rule could say "cannot tell"
            t2, e2, _ = (np.array(a) for a in zip(*got[k, "sokal"]))
            sok[k] = float(np.mean((np.abs(t2 - ex) <= Z * e2) | (50 * t2 > T)))
    return Cell(name, kernel, T, seeds, exact, covered, within, answered, bias, rel, sok)


def table(cells: list[Cell]) -> str:
    """Markdown table of the validation (one row per cell and observable)."""
    rows = [
        "| model | kernel | T | observable | exact tau | covered | answered | within (answered) "
        "| bias | rel. error | Sokal covered |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        for k, ex in c.exact.items():
            exs = f"{ex[0]:.3g}" if ex.size == 1 else f"{ex.min():.3g}-{ex.max():.3g}"
            sok = f"{c.sokal_covered[k]:.2f}" if k in c.sokal_covered else "-"
            rows.append(
                f"| {c.model} | {c.kernel} | {c.length} | {k} | {exs} | {c.covered[k]:.2f} | "
                f"{c.answered[k]:.2f} | {c.within[k]:.2f} | {c.bias[k]:+.3f} | {c.rel_err[k]:.3f} "
                f"| {sok} |"
            )
    return "\n".join(rows)


def full_set(seeds: int = 100) -> list[Cell]:
    return [
        run_cell(name, kernel, T, seeds)
        for name in LENGTHS
        for kernel in KERNELS[name]
        for T in LENGTHS[name]
    ]


# -- CI subset ---------------------------------------------------------------------------------
@pytest.mark.parametrize("T", LENGTHS["rbm"])
def test_rbm_magnetisation_slow_mode_small_weight(T):
    """The issue's case: Sokal's window gave 2.5 against an exact 3.74; the estimate must now be
    within its error bar (or say it cannot tell) at every length, and answer at the longest."""
    observables = OBSERVABLES if T == 4000 else ("magnetisation",)
    cell = run_cell("rbm", "chromatic", T, seeds=40, observables=observables)
    assert cell.exact["magnetisation"][0] == pytest.approx(3.744, abs=1e-3)
    assert not cell.failures(longest=T == LENGTHS["rbm"][-1]), table([cell])
    if T > 1000:  # the previous estimator fails this very cell (the validation can catch it)
        assert cell.sokal_covered["magnetisation"] < PASS, table([cell])


@pytest.mark.parametrize(
    "name,kernel,T,observables",
    [
        ("lattice", "sequential", 4000, ("magnetisation", "energy")),
        ("planted", "random-scan", 8000, ("energy", "pairs")),
    ],
)
def test_other_models_one_cell_each(name, kernel, T, observables):
    cell = run_cell(name, kernel, T, seeds=30, observables=observables, compare=False)
    assert not cell.failures(longest=False), table([cell])


@pytest.mark.parametrize("kernel", ["chromatic", "sequential", "random-scan"])
def test_exact_tau_of_a_draw(kernel):
    """The iterative exact tau (no dense matrix) against ExactChain's fundamental matrix; the
    random-scan draw (n updates) against the dense n-th power of the single-update kernel."""
    from pbitsim.diagnostics import ExactChain, transition_matrix
    from pbitsim.exact import boltzmann

    c = models.spin_glass(6, p=0.6, seed=2, field=0.3, beta=1.0)
    F = np.column_stack(list(observable_values(c).values()))
    if kernel == "random-scan":
        P = transition_matrix(c, kernel, sparse=False)
        ch = ExactChain.from_matrix(np.linalg.matrix_power(P, c.n), boltzmann(c))
        np.testing.assert_allclose(exact_tau(c, kernel, F, updates=1), ExactChain(c).tau_int(F))
    else:
        ch = ExactChain(c, kernel)
    np.testing.assert_allclose(exact_tau(c, kernel, F), ch.tau_int(F), rtol=1e-8)


def test_rbm_sequential_is_the_chromatic_kernel():
    """Why (a) and (c) skip the sequential kernel: with visibles numbered first it is the same
    Markov kernel as the chromatic step."""
    from pbitsim.diagnostics import transition_matrix

    for name in ("rbm", "planted"):
        c = model(name)
        np.testing.assert_allclose(
            transition_matrix(c, "sequential"), transition_matrix(c, "chromatic"), atol=1e-14
        )


def test_q_error_bar_follows_correlated_batches():
    """Q from batches shorter than tau_int: batches of one chain are correlated, so a jackknife
    that leaves out one batch at a time (as if independent) gives too small an error bar; the
    one that leaves out blocks of consecutive batches (q_from_samples) follows the spread of
    independent repetitions. Planted RBM, chromatic: pair products with tau up to 23 steps."""
    from pbitsim.diagnostics.q import (
        gradient_estimates,
        jackknife_groups,
        q_from_estimates,
        q_from_samples,
    )
    from pbitsim.exact import exact_moments
    from pbitsim.samples import Samples

    c = model("planted")
    i, j, _ = c.edges()
    _, C = exact_moments(c)
    target = C[i, j] + 0.05  # a gradient of known size on every edge
    reps, R, T, batch = 150, 2, 2000, 10
    states = simulate_states(c, "chromatic", T, reps * R, seed=5)
    spins = all_states(c.n)
    grouped, naive = [], []
    for r in range(reps):
        s = Samples(
            spins[states[r * R : (r + 1) * R]],
            c.fingerprint,
            c.topology_fingerprint,
            "exact-chromatic",
            r,
            {"thin": 1},
            {},
        )
        res = q_from_samples(s, target, couplings=c, batch=batch)
        assert res.groups == R * 8
        grouped.append((res.q, res.q_err))
        naive.append(q_from_estimates(gradient_estimates(s, target, couplings=c, batch=batch)))
    q, err = np.array(grouped).T
    spread = q.std(ddof=1)
    assert np.median(err) == pytest.approx(spread, rel=0.35)
    # batches taken as independent: about 0.6 of the spread here
    assert np.median([n.q_err for n in naive]) < 0.7 * spread
    # one estimate per group: the grouped jackknife is the per-estimate one
    g = np.random.default_rng(3).normal(0.3, 1.0, (7, 4))
    one = q_from_estimates(g, groups=np.arange(7))
    assert one.q_err == pytest.approx(q_from_estimates(g).q_err, rel=1e-10)
    assert list(jackknife_groups(4, 3)) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    with pytest.raises(ValueError, match="3 jackknife groups"):
        q_from_estimates(g, groups=[0, 0, 0, 0, 1, 1, 1])


@pytest.mark.skipif(not FULL, reason="takes minutes: set PBITSIM_TAU_VALIDATION=full")
def test_full_validation_set():
    cells = full_set()
    print("\n" + table(cells))
    fails = [f for c in cells for f in c.failures(c.length == LENGTHS[c.model][-1])]
    assert not fails, "\n".join(fails)


if __name__ == "__main__":
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    print(table([]), flush=True)
    cells = []
    for name in LENGTHS:
        for kernel in KERNELS[name]:
            for T in LENGTHS[name]:
                cells.append(run_cell(name, kernel, T, seeds))
                print(table(cells[-1:]).split("\n", 2)[2], flush=True)
    fails = [f for c in cells for f in c.failures(c.length == LENGTHS[c.model][-1])]
    print(f"\n{len(cells)} cells, {seeds} estimates each: " + ("; ".join(fails) or "all pass"))
