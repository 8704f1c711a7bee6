"""Streaming diagnostics (``pbitsim/diagnostics/streaming.py``): the same tau_int, ESS, error bars,
cross-check, trust verdicts and Q as the in-memory path, to rtol 1e-9, whatever the chunking;
windows past the maximum lag reported, never cut; working memory bounded by the budget.
"""

import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner
from diag_support import exact_samples, parallel_tempering
from scipy.signal import lfilter

import pbitsim
from pbitsim import models
from pbitsim.cli import main
from pbitsim.diagnostics.autocorr import estimate_tau
from pbitsim.diagnostics.report import diagnose
from pbitsim.diagnostics.streaming import (
    diagnose_streaming,
    estimate_tau_stream,
    plan_stream,
)

RTOL = 1e-9
FLOAT_FIELDS = ("tau", "tau_err", "ess", "ess_err", "variance", "batch_tau", "batch_err")
EXACT_FIELDS = ("window", "error_window", "converged", "disagree", "batch_sizes", "reasons")


def series(R: int, T: int, k: int, seed: int, offset: float = 0.0) -> np.ndarray:
    """(R, T, k): a fast AR(1) plus a slow one of small weight (a tail the window must reach),
    on a large offset (so a centring mistake would show)."""
    rng = np.random.default_rng(seed)
    out = offset + np.arange(R)[:, None, None] * 0.2
    for phi, w in ((0.8, 1.0), (0.95, 0.15)):
        e = rng.normal(size=(R, T, k))
        e[:, 0] /= np.sqrt(1 - phi**2)
        out = out + w * lfilter([1.0], [1.0, -phi], e, axis=1)
    return out


def assert_same(ref, got, rows=None):
    for f in FLOAT_FIELDS:
        np.testing.assert_allclose(getattr(got, f), getattr(ref, f), rtol=RTOL, atol=0, err_msg=f)
    for f in EXACT_FIELDS:
        a, b = getattr(ref, f), getattr(got, f)
        assert (a == b) if isinstance(a, tuple) else np.array_equal(a, b), f
    rows = len(got.acf) if rows is None else rows
    scale = np.abs(ref.acf[0])
    np.testing.assert_allclose(got.acf[:rows], ref.acf[:rows], rtol=0, atol=1e-12 * scale.max())


@pytest.mark.filterwarnings("ignore::pbitsim.diagnostics.AutocorrWarning")
@pytest.mark.parametrize(
    "kw",
    [{}, {"center": "replica"}, {"method": "sokal"}, {"shared_window": False}],
    ids=["geyer", "replica-centre", "sokal", "own-windows"],
)
def test_agrees_with_in_memory(kw):
    x = series(R=3, T=12_000, k=2, seed=1, offset=50.0)
    ref = estimate_tau(x, quiet=True, **kw)
    assert len(ref.batch_sizes) >= 2
    # chunks far shorter than the maximum lag, one that does not divide T, and the whole chain
    for chunk in (97, 1000, 12_000):
        got = estimate_tau_stream(x, chunk=chunk, max_lag=11_999, quiet=True, **kw)
        assert got.max_lag is None and got.acf.shape == ref.acf.shape
        assert_same(ref, got)


def test_converged_and_not_both_agree():
    """A chain long enough for a verdict and one too short: verdicts and reasons agree too."""
    long = series(R=2, T=20_000, k=1, seed=5)[..., 0]
    short = series(R=2, T=600, k=1, seed=3)[..., 0]
    ref_long = estimate_tau(long, quiet=True)
    assert ref_long.converged
    assert_same(ref_long, estimate_tau_stream(long, chunk=4096, max_lag=19_999))
    with pytest.warns(pbitsim.diagnostics.AutocorrWarning):
        ref_short = estimate_tau(short, quiet=True)
    assert not ref_short.converged and ref_short.reasons
    with pytest.warns(pbitsim.diagnostics.AutocorrWarning):
        got = estimate_tau_stream(short, chunk=64, quiet=True)
    assert_same(ref_short, got)
    with pytest.raises(pbitsim.diagnostics.AutocorrError):
        estimate_tau_stream(short, chunk=64)


def test_max_lag_past_the_window_changes_nothing_but_the_acf():
    x = series(R=2, T=20_000, k=3, seed=4)
    ref = estimate_tau(x, quiet=True)
    got = estimate_tau_stream(x, max_lag=1500, chunk=700, quiet=True)
    assert int(ref.error_window.max()) < 1500 and got.max_lag == 1500
    assert got.acf.shape == (1501, 3)
    assert_same(ref, got, rows=1501)


def test_window_past_max_lag_is_reported_not_cut():
    x = series(R=2, T=20_000, k=1, seed=5)[..., 0]
    ref = estimate_tau(x, quiet=True)
    lag = int(ref.error_window) - 5  # the window fits, its error window does not
    assert int(ref.window) < lag
    with pytest.warns(pbitsim.diagnostics.AutocorrWarning, match="max_lag"):
        got = estimate_tau_stream(x, max_lag=lag, quiet=True)
    assert not got.converged and got.max_lag == lag
    assert any(f"max_lag = {lag}" in r for r in got.reasons)
    assert float(got.tau) == pytest.approx(float(ref.tau), rel=RTOL)
    # far too short for the initial sequence to end: not a confident answer either
    with pytest.warns(pbitsim.diagnostics.AutocorrWarning):
        got = estimate_tau_stream(x, max_lag=4, quiet=True)
    assert not got.converged and any("max_lag = 4" in r for r in got.reasons)
    assert not any("never sank" in r for r in got.reasons)


def test_plan_respects_the_budget():
    p = plan_stream(1, 10**8, 3, memory=256 << 20)
    assert p.max_lag == 1 << 16 and p.estimate <= 256 << 20 and p.chunk >= 4 * p.max_lag
    small = plan_stream(1, 10**8, 3, memory=4 << 20)  # default lag lowered to fit
    assert small.max_lag < 1 << 16 and small.estimate <= 4 << 20
    assert plan_stream(2, 50, 1).max_lag == 49  # never past the chain
    with pytest.raises(ValueError, match="cannot hold .*max_lag = 1000000"):
        plan_stream(1, 10**8, 3, memory=4 << 20, max_lag=10**6)


def test_memory_is_bounded(tmp_path):
    """Python-side allocations (numpy reports them to tracemalloc) stay within the budget on a
    memory-mapped series 8 times its size."""
    T, budget = 1 << 20, 1 << 20
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64, shape=(T,))
    x[:] = series(1, T, 1, seed=6)[0, :, 0]
    x.flush()
    del x
    y = np.load(tmp_path / "x.npy", mmap_mode="r")
    tracemalloc.start()
    try:
        it = estimate_tau_stream(y, memory=budget, quiet=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert it.max_lag is not None and it.max_lag < T - 1
    assert peak <= budget < y.nbytes / 4


@pytest.fixture(scope="module")
def model():
    return models.ferromagnet(6, beta=0.35)


@pytest.fixture(scope="module")
def runs(model):
    return {
        "plain": exact_samples(model, "sequential", draws=3000, replicas=8, seed=1),
        "few": exact_samples(model, "chromatic", draws=6000, replicas=2, seed=2),
        "pt": parallel_tempering(
            model.with_beta(0.6), np.linspace(0.05, 0.6, 4), draws=1000, chains=2, seed=3
        ),
    }


def assert_same_diagnosis(ref, got):
    assert list(ref.taus) == list(got.taus)
    for name in ref.taus:
        assert_same(ref.taus[name], got.taus[name])
    assert (ref.q is None) == (got.q is None) and (ref.noise is None) == (got.noise is None)
    if ref.q is not None:
        for f in ("q", "q_err", "q_naive", "q_naive_err", "signal", "noise"):
            assert getattr(got.q, f) == pytest.approx(getattr(ref.q, f), rel=RTOL), f
        assert (got.q.groups, got.q.steps, got.q.replicas) == (
            ref.q.groups,
            ref.q.steps,
            ref.q.replicas,
        )
    if ref.noise is not None:
        assert got.noise == pytest.approx(ref.noise, rel=RTOL)
        assert got.noise_steps == ref.noise_steps
    assert (ref.rung, ref.beta, ref.thin) == (got.rung, got.beta, got.thin)
    notes = [n for n in got.notes if not n.startswith("streamed in chunks")]
    assert notes == ref.notes


@pytest.mark.parametrize("run", ["plain", "few", "pt"])
def test_diagnose_streaming_equals_diagnose(model, runs, run):
    s = runs[run]
    data = np.where(np.random.default_rng(0).random((80, 6)) < 0.8, 1, -1).astype(np.int8)
    observables = ("energy", "magnetisation", "edges", "pairs")
    c = None if run == "pt" else model
    for d in (None, data):
        ref = diagnose(s, c, observables=observables, data=d)
        got = diagnose_streaming(s, c, observables=observables, data=d, chunk=333, max_lag=None)
        assert_same_diagnosis(ref, got)
        assert (d is None) == (got.q is None)


def test_diagnose_streaming_from_disk(model, runs, tmp_path):
    """From a memory-mapped file (pages given back after each chunk), with an explicit batch."""
    runs["plain"].save(tmp_path / "run")
    s = pbitsim.load_samples(tmp_path / "run")
    ref = diagnose(s, model, batch=100)
    got = diagnose_streaming(s, model, batch=100, memory=2 << 20)
    assert_same_diagnosis(ref, got)
    assert any("streamed in chunks" in n for n in got.notes)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_streams_above_the_budget(model, runs, tmp_path):
    model.save(tmp_path / "model.pbit")
    runs["plain"].save(tmp_path / "run")
    args = ("diagnose", tmp_path / "run", "--model", tmp_path / "model.pbit")
    whole = cli(*args)
    streamed = cli(*args, "--memory", "4M")
    assert whole.exit_code == 0 and streamed.exit_code == 0, streamed.output
    assert "streamed in chunks" in streamed.output and "streamed" not in whole.output
    table = [line for line in streamed.output.splitlines() if "streamed in chunks" not in line]
    assert table == whole.output.splitlines()
    cut = cli(*args, "--max-lag", "3")
    assert cut.exit_code == 0 and "max_lag = 3" in cut.output


def test_cli_bad_memory_and_bad_spins(model, runs, tmp_path):
    runs["plain"].save(tmp_path / "run")
    res = cli("diagnose", tmp_path / "run", "--memory", "lots")
    assert res.exit_code == 2 and "--memory" in res.output
    spins = np.load(tmp_path / "run.npy")
    spins[3, 1234, 2] = 0
    np.save(tmp_path / "run.npy", spins)
    for extra in ((), ("--memory", "1M")):  # checked in memory and while streaming
        res = cli("diagnose", tmp_path / "run", *extra)
        assert res.exit_code == 1 and "+1/-1" in res.output and "1234" in res.output


def test_cli_streams_an_interrupted_run(model, runs, tmp_path):
    """The draws an interrupted run wrote are streamed like the rest, and only those."""
    from pbitsim.samples import SampleStream

    s = runs["plain"]
    model.save(tmp_path / "model.pbit")
    header = {k: getattr(s, k) for k in ("fingerprint", "topology_fingerprint", "method", "seed")}
    header["settings"] = {**s.settings, "draws": 3000}
    stream = SampleStream(tmp_path / "cut", (8, 3000, 6), header)
    stream.write(np.asarray(s.spins[:, :1200]))
    stream.note()  # the periodic note; then the process "dies"
    args = ("diagnose", tmp_path / "cut", "--model", tmp_path / "model.pbit")
    whole, streamed = cli(*args), cli(*args, "--max-lag", "1199")  # --max-lag streams
    assert streamed.exit_code == 0, streamed.output
    assert "1200 of 3000 draws were written" in streamed.output
    assert "streamed in chunks" in streamed.output
    table = [line for line in streamed.output.splitlines() if "streamed in chunks" not in line]
    assert table == whole.output.splitlines()
