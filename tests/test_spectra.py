"""Exact kernels and spectra against brute force: explicit enumeration of the updates, dense
eigendecomposition, matrix powers, explicit sector bases; and the spin-flip symmetry test (sample
estimates against exact values within their error bars).

Tolerances: exact identities 1e-9 (relative) or 1e-12 (stochastic matrices); sample estimates
within 3.5 of their reported standard errors.
"""

import itertools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from diag_support import exact_samples

from pbitsim import Couplings, models
from pbitsim.diagnostics import spectra
from pbitsim.diagnostics.autocorr import estimate_tau
from pbitsim.diagnostics.kernels import (
    color_class_update_matrix,
    site_update_matrix,
    transition_matrix,
    transition_operator,
)
from pbitsim.diagnostics.observables import magnetisation, pair_products
from pbitsim.diagnostics.spectra import (
    DegenerateEigenvalueWarning,
    ExactChain,
    stationarity_residual,
)
from pbitsim.exact import all_states, boltzmann, state_index

KERNELS = ["random-scan", "sequential", "chromatic"]


def glass(n=5, seed=3, beta=0.8):
    """A frustrated model with fields (no symmetry) and colour classes of several sites."""
    return models.spin_glass(n, p=0.6, seed=seed, field=0.5, beta=beta)


def dense(P):
    return P.toarray() if sp.issparse(P) else np.asarray(P)


# -- brute force ------------------------------------------------------------------------------
def q_up(c, s, i):
    """Heat-bath probability of s_i = +1 given the state s (explicitly from J and h)."""
    J, h = c.to_dense()
    return 0.5 * (1 + np.tanh(c.beta * (J[i] @ s + h[i])))


def brute_step(c, x, schedule, simultaneous):
    """Distribution after one step from state x, enumerating every outcome of every update."""
    n = c.n
    dist = {x: 1.0}
    for group in schedule:
        new = {}
        for y, w in dist.items():
            s = all_states(n)[y].astype(float)
            for vals in itertools.product([-1, 1], repeat=len(group)):
                prob, t = w, s.copy()
                for i, v in zip(group, vals):
                    # simultaneous: every field from the state before the class update;
                    # sequential within the group otherwise
                    q = q_up(c, s if simultaneous else t, i)
                    prob *= q if v == 1 else 1 - q
                    t[i] = v
                z = int(state_index(t))
                new[z] = new.get(z, 0.0) + prob
        dist = new
    row = np.zeros(1 << n)
    for y, w in dist.items():
        row[y] += w
    return row


def brute_matrix(c, kernel):
    N = 1 << c.n
    if kernel == "random-scan":
        return (
            sum(np.array([brute_step(c, x, [[i]], False) for x in range(N)]) for i in range(c.n))
            / c.n
        )
    if kernel == "sequential":
        return np.array([brute_step(c, x, [[i] for i in range(c.n)], False) for x in range(N)])
    classes = [list(cl) for cl in c.color_classes()]
    return np.array([brute_step(c, x, classes, True) for x in range(N)])


def brute_tau(P, p, f, tmax=20_000):
    """tau_int by summing C(t) = <f~, P^t f~>_p term by term."""
    ft = f - p @ f
    var = p @ (ft * ft)
    total, v = 0.0, ft.copy()
    for t in range(1, tmax):
        v = P @ v
        c = p @ (ft * v)
        total += c
        if abs(c) < 1e-16 * var and t > 10:
            break
    return 1 + 2 * total / var


def assert_same_multiset(a, b, atol):
    """Every value of a matches a distinct value of b (greedy nearest match)."""
    b = list(np.asarray(b, dtype=complex))
    assert len(a) == len(b)
    for x in np.asarray(a, dtype=complex):
        d = np.abs(np.asarray(b) - x)
        j = int(np.argmin(d))
        assert d[j] < atol, (x, b[j])
        b.pop(j)


# -- kernels ------------------------------------------------------------------------------------
def test_site_update_matrix_brute():
    c = glass()
    K = dense(site_update_matrix(c, 2))
    N = 1 << c.n
    expect = np.zeros((N, N))
    for x in range(N):
        s = all_states(c.n)[x].astype(float)
        q = q_up(c, s, 2)
        up, down = x | 4, x & ~4
        expect[x, up] += q
        expect[x, down] += 1 - q
    np.testing.assert_allclose(K, expect, atol=1e-14)


@pytest.mark.parametrize("kernel", KERNELS)
def test_transition_matrix_brute(kernel):
    c = glass()
    assert max(len(cl) for cl in c.color_classes()) > 1  # the chromatic case is not trivial
    P = dense(transition_matrix(c, kernel))
    np.testing.assert_allclose(P, brute_matrix(c, kernel), atol=1e-13)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-13)
    # both storage forms and the operator agree
    other = dense(transition_matrix(c, kernel, sparse=kernel != "random-scan"))
    np.testing.assert_allclose(other, P, atol=1e-13)
    op = transition_operator(c, kernel)
    f = np.random.default_rng(0).normal(size=(1 << c.n, 2))
    np.testing.assert_allclose(op.matmat(f), P @ f, atol=1e-12)
    np.testing.assert_allclose(op.rmatvec(f[:, 0]), P.T @ f[:, 0], atol=1e-12)


def test_chromatic_is_product_of_class_updates():
    c = glass()
    prod = np.eye(1 << c.n)
    for cl in c.color_classes():
        prod = prod @ dense(color_class_update_matrix(c, cl))
    np.testing.assert_allclose(dense(transition_matrix(c, "chromatic")), prod, atol=1e-13)


def test_color_class_wrong_not_independent():
    c = models.ring(5)
    with pytest.raises(ValueError, match="coupled"):
        color_class_update_matrix(c, [0, 1])


def test_transition_matrix_wrong_kernel():
    with pytest.raises(ValueError, match="kernel"):
        transition_matrix(models.ring(4), "gibbs")
    with pytest.raises(ValueError, match="permutation"):
        transition_matrix(models.ring(4), "sequential", order=[0, 0, 1, 2])


@pytest.mark.parametrize("kernel", KERNELS)
def test_stationary_and_reversibility(kernel):
    c = glass()
    ch = ExactChain(c, kernel)
    assert stationarity_residual(ch.P, boltzmann(c)) < 1e-14
    P = dense(ch.P)
    flux = ch.p[:, None] * P
    asym = np.abs(flux - flux.T).max()
    assert ch.reversible == (kernel == "random-scan")
    if kernel == "random-scan":
        assert asym < 1e-15
    else:
        assert asym > 1e-4  # sweeps do not satisfy detailed balance


# -- spectra ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", KERNELS)
def test_spectrum_and_gap_vs_dense_eig(kernel):
    c = glass()
    ch = ExactChain(c, kernel)
    ev = np.linalg.eigvals(dense(ch.P))
    ev = ev[np.argsort(-np.abs(ev))]
    mine = ch.eigenvalues()
    np.testing.assert_allclose(np.abs(mine), np.abs(ev), atol=1e-10)
    assert_same_multiset(mine, ev, atol=1e-8)
    assert ch.spectral_gap() == pytest.approx(1 - np.abs(ev[1]), abs=1e-12)
    assert ch.relaxation_time() == pytest.approx(1 / (1 - np.abs(ev[1])), rel=1e-9)


def test_gap_vs_power_iteration():
    c = glass()
    ch = ExactChain(c, "random-scan")
    P = dense(ch.P)
    # power iteration on the deviation d = mu - p (norm of L2(1/p)): ||d P|| / ||d|| -> |lambda_2|
    d = -ch.p.copy()
    d[0] += 1.0
    for _ in range(3000):
        d = d @ P
        d -= d.sum() * ch.p  # keep rounding from feeding the stationary direction
        d /= np.linalg.norm(d / np.sqrt(ch.p))
    rate = np.linalg.norm((d @ P) / np.sqrt(ch.p))
    assert rate == pytest.approx(1 - ch.spectral_gap(), rel=1e-6)


@pytest.mark.parametrize("kernel", KERNELS)
def test_tau_int_vs_brute_sum(kernel):
    c = glass()
    ch = ExactChain(c, kernel)
    P = dense(ch.P)
    F = np.column_stack([ch.pair_values(), ch.magnetisation_values(), ch.energy_values()])
    taus = ch.tau_int(F)
    for j in range(F.shape[1]):
        assert taus[j] == pytest.approx(brute_tau(P, ch.p, F[:, j]), rel=1e-9)
    Z = ch.fundamental_matrix()
    np.testing.assert_allclose(Z, np.linalg.inv(np.eye(len(P)) - P + ch.p[None, :]), atol=1e-10)


@pytest.mark.parametrize("kernel", ["random-scan", "sequential"])
def test_autocovariance_and_time_average_variance_vs_powers(kernel):
    c = glass()
    ch = ExactChain(c, kernel)
    P = dense(ch.P)
    f = ch.pair_values()[:, 0]
    ft = f - ch.p @ f
    acov = ch.autocovariance(f, 400)
    v, brute = ft.copy(), []
    for _ in range(401):
        brute.append(ch.p @ (ft * v))
        v = P @ v
    np.testing.assert_allclose(acov, brute, atol=1e-14)
    for M in (1, 7, 300):
        t = np.arange(M)
        cov = np.asarray(brute)[np.abs(t[:, None] - t[None, :])]
        assert ch.time_average_variance(f, M) == pytest.approx(cov.sum() / M**2, rel=1e-9)
    # large M (the Q^{M+1} tail is applied by matrix power)
    M = 10_000
    assert ch.time_average_variance(f, M) * M == pytest.approx(
        ch.variance(f) * ch.tau_int(f), rel=1e-2
    )


def test_sector_gaps_vs_explicit_projection():
    c = models.ring(6, J=1.0, beta=0.7)
    ch = ExactChain(c, "sequential")
    assert ch.flip_symmetric and ch.sectors == ("even", "odd")
    N = 1 << c.n
    # explicit flip-even/odd bases (p-weighted picture: A = D^1/2 P D^-1/2)
    A = np.sqrt(ch.p)[:, None] * dense(ch.P) / np.sqrt(ch.p)[None, :]
    h = N // 2
    Be, Bo = np.zeros((N, h)), np.zeros((N, h))
    for y in range(h):
        Be[y, y] = Be[N - 1 - y, y] = 1 / np.sqrt(2)
        Bo[y, y], Bo[N - 1 - y, y] = 1 / np.sqrt(2), -1 / np.sqrt(2)
    ev_e = np.linalg.eigvals(Be.T @ A @ Be)
    ev_o = np.linalg.eigvals(Bo.T @ A @ Bo)
    np.testing.assert_allclose(
        np.sort(np.abs(ch.eigenvalues("even"))), np.sort(np.abs(ev_e)), atol=1e-10
    )
    np.testing.assert_allclose(
        np.sort(np.abs(ch.eigenvalues("odd"))), np.sort(np.abs(ev_o)), atol=1e-10
    )
    ev_e = ev_e[np.argsort(-np.abs(ev_e))]
    gaps = ch.sector_gaps()
    assert gaps["even"] == pytest.approx(1 - abs(ev_e[1]), abs=1e-12)
    assert gaps["odd"] == pytest.approx(1 - np.abs(ev_o).max(), abs=1e-12)
    assert ch.spectral_gap() == pytest.approx(min(gaps.values()), abs=1e-15)
    # the union of the sectors is the whole spectrum
    plain = ExactChain.from_matrix(ch.P, ch.p)
    np.testing.assert_allclose(
        np.sort(np.abs(ch.eigenvalues())), np.sort(np.abs(plain.eigenvalues())), atol=1e-10
    )


@pytest.mark.parametrize("kernel", KERNELS)
def test_mode_expansion_with_all_modes_is_exact(kernel):
    c = glass()
    ch = ExactChain(c, kernel)
    F = np.column_stack([ch.pair_values(), ch.magnetisation_values()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateEigenvalueWarning)
        me = ch.mode_expansion(F, K=1 << c.n)
    np.testing.assert_allclose(me.tau_multi_mode, me.tau_exact, rtol=1e-8)
    np.testing.assert_allclose(sum(cl.weight for cl in me.clusters), 1.0, atol=1e-9)
    np.testing.assert_allclose(sum(cl.tau_term for cl in me.clusters), me.tau_exact, rtol=1e-8)


def test_mode_expansion_reversible_matches_eigh_overlaps():
    c = glass()
    ch = ExactChain(c, "random-scan")
    f = ch.pair_values()[:, 1]
    P = dense(ch.P)
    A = np.sqrt(ch.p)[:, None] * P / np.sqrt(ch.p)[None, :]
    lam, U = np.linalg.eigh(0.5 * (A + A.T))
    order = np.argsort(-np.abs(lam))
    lam, U = lam[order][1:], U[:, order][:, 1:]  # drop the stationary mode
    ck2 = (U.T @ (np.sqrt(ch.p) * (f - ch.p @ f))) ** 2
    me = ch.mode_expansion(f, K=4)
    assert me.modes_used == {"all": 4}
    for k, cl in enumerate(me.clusters):
        assert cl.eigenvalues[0] == pytest.approx(lam[k], abs=1e-12)
        assert cl.weight == pytest.approx(ck2[k] / ck2.sum(), abs=1e-10)
    g = (1 + lam) / (1 - lam)
    expect = (np.sum(ck2[:4] * g[:4]) + ck2[4:].sum()) / ck2.sum()
    assert me.tau_multi_mode == pytest.approx(expect, rel=1e-10)
    assert me.tau_single_gap == pytest.approx(g[0], rel=1e-10)


# -- degenerate and defective spectra -----------------------------------------------------------
def test_degenerate_eigenvalues_warn_and_use_the_cluster():
    # Independent spins with equal fields: random-scan eigenvalues 1 - k/n with multiplicity
    # C(n, k); the sweep is rank one (all non-stationary eigenvalues 0).
    c = Couplings.from_edges(4, [], h=np.full(4, 0.3), beta=1.0)
    ch = ExactChain(c, "random-scan")
    f = ch.states[:, 0].astype(float)
    with pytest.warns(DegenerateEigenvalueWarning, match="degenerate"):
        me = ch.mode_expansion(f, K=1)
    assert me.modes_used == {"all": 4}  # the whole cluster at 1 - 1/n, not 1 mode of it
    assert me.clusters[0].degenerate and len(me.clusters[0].eigenvalues) == 4
    np.testing.assert_allclose(me.clusters[0].eigenvalues, 0.75, atol=1e-12)
    assert me.tau_multi_mode == pytest.approx(me.tau_exact, rel=1e-10)
    assert me.tau_exact == pytest.approx((1 + 0.75) / (1 - 0.75), rel=1e-10)
    sweep = ExactChain(c, "sequential")
    assert sweep.spectral_gap() == pytest.approx(1.0, abs=1e-12)
    with pytest.warns(DegenerateEigenvalueWarning):
        me = sweep.mode_expansion(f, K=2)
    assert me.tau_exact == pytest.approx(1.0, abs=1e-12)
    assert me.tau_multi_mode == pytest.approx(1.0, abs=1e-12)


def test_defective_eigenvalue_jordan_block():
    # A 3-state chain, uniform p, whose non-stationary part is a 2x2 Jordan block (lambda, eps):
    # eigenvectors do not exist for it; the Schur/projector route must still be exact.
    one = np.ones(3) / np.sqrt(3)
    u = np.array([1.0, -1.0, 0.0]) / np.sqrt(2)
    v = np.cross(one, u)
    lam, eps = 0.1, 0.15
    P = np.outer(one, one) + lam * (np.outer(u, u) + np.outer(v, v)) + eps * np.outer(u, v)
    assert P.min() > 0
    ch = ExactChain.from_matrix(P)
    assert not ch.reversible
    Z = np.linalg.inv(np.eye(3) - P + np.ones((3, 1)) @ ch.p[None, :])
    f = np.array([1.0, 0.0, -2.0])
    ft = f - ch.p @ f
    exact = (2 * ch.p @ (ft * (Z @ ft)) - ch.p @ (ft * ft)) / (ch.p @ (ft * ft))
    assert ch.tau_int(f) == pytest.approx(exact, rel=1e-12)
    assert ch.tau_int(f) == pytest.approx(brute_tau(P, ch.p, f), rel=1e-10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        me = ch.mode_expansion(f, K=1)
    assert any(issubclass(w.category, DegenerateEigenvalueWarning) for w in caught)
    assert me.modes_used == {"all": 2}  # the Jordan pair is never split
    assert me.tau_multi_mode == pytest.approx(exact, rel=1e-6)
    assert ch.spectral_gap() == pytest.approx(1 - lam, abs=1e-6)


# -- large models: iterative paths --------------------------------------------------------------
def test_iterative_paths_match_dense(monkeypatch):
    c = models.spin_glass(7, p=0.5, seed=1, field=0.4, beta=0.9)
    ref = ExactChain(c, "random-scan")
    ref_seq = ExactChain(c, "sequential")
    f = ref.pair_values()[:, :3]
    tau, gap, pred = ref.tau_int(f), ref.spectral_gap(), ref.predict_tau(f, K=6)
    tau_seq, gap_seq = ref_seq.tau_int(f), ref_seq.spectral_gap()
    monkeypatch.setattr(spectra, "DENSE_LIMIT", 32)
    monkeypatch.setattr(spectra, "ITERATIVE_GAP_DIM", 16)
    it = ExactChain(c, "random-scan")  # sparse LU for Z, ARPACK for gap and modes
    np.testing.assert_allclose(it.tau_int(f), tau, rtol=1e-9)
    assert it.spectral_gap() == pytest.approx(gap, rel=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateEigenvalueWarning)
        np.testing.assert_allclose(it.predict_tau(f, K=6), pred, rtol=1e-7)
    seq = ExactChain(c, "sequential")  # operator only (P never formed)
    assert seq.P is None
    assert seq.spectral_gap() == pytest.approx(gap_seq, rel=1e-8)
    with pytest.raises(NotImplementedError):
        seq.tau_int(f)
    assert np.all(np.isfinite(tau_seq))


# -- spin-flip symmetry: the slowest mode is invisible to the gradient --------------------------
def test_spin_flip_symmetry_even_sector_predicts_pair_correlations():
    # h = 0 ferromagnet at a beta where flipping the magnetisation is slow (random scan).
    c = models.ferromagnet(6, J=1.0, beta=0.35)
    ch = ExactChain(c, "random-scan")
    gaps = ch.sector_gaps()
    assert ch.spectral_gap() == gaps["odd"]
    assert gaps["even"] / gaps["odd"] > 20  # a large factor between the sectors

    F = ch.pair_values()  # s_i s_j over all edges: flip-even
    m = ch.magnetisation_values()  # flip-odd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateEigenvalueWarning)  # permutation symmetry
        me = ch.mode_expansion(F[:, 0], K=8)
        me_m = ch.mode_expansion(m, K=8)
    assert set(me.modes_used) == {"even"} and set(me_m.modes_used) == {"odd"}
    assert me.relevant_gap == pytest.approx(gaps["even"])
    assert me_m.relevant_gap == pytest.approx(gaps["odd"])
    tau_pair, tau_m = ch.tau_int(F[:, 0]), ch.tau_int(m)
    # the even-sector multi-mode predictor is close to exact; the single global gap is not
    assert me.tau_multi_mode == pytest.approx(tau_pair, rel=0.01)
    assert me.tau_single_gap > 30 * tau_pair
    assert tau_m > 30 * tau_pair

    # sampled chains of the exact kernel: 40000 steps ~ 100 tau(m) per replica
    s = exact_samples(c, "random-scan", draws=40_000, replicas=8, seed=7)
    it_pair = estimate_tau(pair_products(s.spins, [[0, 1]])[..., 0])
    it_m = estimate_tau(magnetisation(s.spins))
    err_pair, err_m = float(it_pair.tau_err), float(it_m.tau_err)
    assert abs(float(it_pair.tau) - tau_pair) < 3.5 * err_pair
    assert abs(float(it_pair.tau) - me.tau_multi_mode) < 3.5 * err_pair + 0.01 * tau_pair
    assert abs(float(it_m.tau) - tau_m) < 3.5 * err_m
    # the magnetisation's tau (odd sector) mistimes the pair correlations by far more than
    # the error bars
    assert float(it_m.tau) - 3.5 * err_m > 10 * (float(it_pair.tau) + 3.5 * err_pair)

    # and so does the single gap for the gradient SNR: Q(M) of a gradient on the pair terms
    from pbitsim.diagnostics.q import predicted_q

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateEigenvalueWarning)
        q = predicted_q(ch, np.full(F.shape[1], 0.8), 4000, K=8)
    assert q["multi_mode"] == pytest.approx(q["exact"], rel=0.02)
    assert q["single_gap"] < q["exact"] / 20


def test_docs_example_runs(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    monkeypatch.chdir(tmp_path)  # an example writes its report to the working directory
    doc = Path(__file__).resolve().parents[1] / "docs" / "diagnostics.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    assert blocks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateEigenvalueWarning)
        for block in blocks:
            exec(compile(block, str(doc), "exec"), {})


def test_sweep_kernel_tau_from_samples_vs_exact():
    # non-reversible kernel: sampled tau_int of s_i s_j and m against the fundamental matrix
    c = models.ring(6, J=1.0, beta=0.9)
    ch = ExactChain(c, "sequential")
    s = exact_samples(c, "sequential", draws=20_000, replicas=4, seed=3)
    it = estimate_tau(
        np.concatenate(
            [pair_products(s.spins, [[0, 1]]), magnetisation(s.spins)[..., None]], axis=2
        )
    )
    exact = ch.tau_int(np.column_stack([ch.pair_values([[0, 1]])[:, 0], ch.magnetisation_values()]))
    np.testing.assert_array_less(np.abs(it.tau - exact), 3.5 * it.tau_err)


@pytest.mark.parametrize("kernel", KERNELS)
def test_numba_sampler_tau_matches_exact_kernel(kernel):
    """The production samplers against the exact kernel they claim to run.

    Sokal's window truncates the sum of rho(t) at W, which biases tau-hat low by the tail beyond
    W; so the sampled estimate is compared with the exact autocorrelation summed to the same W
    (what the estimator estimates), within 3.5 of its standard errors. A sampler running a
    different kernel (order, step, staleness) would miss by far more. The samplers' random-scan
    "sweep" is n single-site steps, so its exact kernel is P^n.
    """
    import pbitsim
    from pbitsim.diagnostics import transition_matrix
    from pbitsim.exact import all_states, boltzmann

    c = models.spin_glass(6, p=0.6, seed=2, field=0.3, beta=1.0)
    if kernel == "random-scan":
        P = transition_matrix(c, "random-scan", sparse=False)
        ch = ExactChain.from_matrix(np.linalg.matrix_power(P, c.n), boltzmann(c))
    else:
        ch = ExactChain(c, kernel)
    s = pbitsim.sample(c, 20_000, method=kernel, replicas=4, burn_in=500, thin=1, seed=5)
    states = all_states(c.n)[None]  # observables as functions of the state index
    F = np.column_stack([pair_products(states, c)[0], magnetisation(states)[0]])
    series = np.concatenate([pair_products(s.spins, c), magnetisation(s.spins)[..., None]], 2)
    it = estimate_tau(series)
    acov = ch.autocovariance(F, int(it.window.max()))
    rho = acov / acov[0]
    tau_w = np.array([1 + 2 * rho[1 : w + 1, k].sum() for k, w in enumerate(it.window)])
    np.testing.assert_array_less(np.abs(it.tau - tau_w), 3.5 * it.tau_err + 1e-9)
    # and the truncation bias is small next to tau itself here
    np.testing.assert_allclose(tau_w, ch.tau_int(F), rtol=0.15)
