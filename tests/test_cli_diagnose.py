"""``pbitsim diagnose``: table, Q with --data, PT profile, PNG report, fingerprint refusal."""

import numpy as np
import pytest
from click.testing import CliRunner
from diag_support import exact_samples, parallel_tempering

from pbitsim import models
from pbitsim.cli import main
from pbitsim.diagnostics.report import diagnose


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("diag")
    c = models.ferromagnet(6, beta=0.35)
    c.save(d / "model.pbit")
    exact_samples(c, "sequential", draws=3000, replicas=8, seed=1).save(d / "run")
    parallel_tempering(
        c.with_beta(0.6), np.linspace(0.05, 0.6, 4), draws=1000, chains=2, seed=3
    ).save(d / "pt")
    data = np.where(np.random.default_rng(0).random((80, 6)) < 0.8, 1, -1).astype(np.int8)
    np.save(d / "data.npy", data)
    models.ferromagnet(6, beta=0.5).save(d / "other.pbit")
    return d


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res


def test_diagnose_table_and_png(files):
    out = files / "report.png"
    res = run("diagnose", files / "run", "--model", files / "model.pbit", "--out", out)
    assert res.exit_code == 0, res.output
    for word in ("tau_int", "ESS", "energy", "magnetisation", "edges <s_i s_j>", "gradient noise"):
        assert word in res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_diagnose_q_with_data(files):
    res = run(
        "diagnose",
        files / "run",
        "--model",
        files / "model.pbit",
        "--data",
        files / "data.npy",
        "--observables",
        "pairs,magnetisation",
    )
    assert res.exit_code == 0, res.output
    assert "Q = " in res.output and "naive" in res.output
    assert "pairs s_i s_j (slowest of 15" in res.output


def test_diagnose_pt(files):
    out = files / "pt-report.png"
    res = run("diagnose", files / "pt", "--out", out)
    assert res.exit_code == 0, res.output
    assert "parallel tempering" in res.output and "round trips" in res.output
    assert "autocorrelation at PT rung 3" in res.output
    assert "suggested ladder" in res.output
    assert out.exists()


def test_diagnose_refuses_other_model(files):
    res = run("diagnose", files / "run", "--model", files / "other.pbit")
    assert res.exit_code != 0
    assert res.exit_code == 1
    # the CLI names its own flag, not the Python keyword
    assert "drawn from couplings" in res.output and "pass --allow-mismatch" in res.output
    assert "allow_mismatch=True" not in res.output
    res = run("diagnose", files / "run", "--model", files / "other.pbit", "--allow-mismatch")
    assert res.exit_code == 0, res.output
    assert "warning: samples' couplings fingerprint differs" in res.output


def test_diagnose_wrong_observable(files):
    res = run("diagnose", files / "run", "--observables", "entropy")
    assert res.exit_code == 2 and "choose from" in res.output


def test_diagnose_short_chain_is_flagged():
    c = models.ferromagnet(6, beta=0.35)
    s = exact_samples(c, "random-scan", draws=300, replicas=4, seed=5)  # tau(m) ~ 400 steps
    d = diagnose(s, c, observables=("magnetisation",))
    assert "NO (see notes)" in d.text()
    assert any("do not trust" in n and "run a longer chain" in n for n in d.notes), d.notes


def test_listed_in_help():
    res = run("--help")
    assert "diagnose" in res.output


def test_diagnose_an_interrupted_run(files, tmp_path):
    """The draws an interrupted run wrote are diagnosed, with a warning saying how many."""
    import pbitsim
    from pbitsim.samples import SampleStream

    s = pbitsim.load_samples(files / "run")
    header = {k: getattr(s, k) for k in ("fingerprint", "topology_fingerprint", "method", "seed")}
    header["settings"] = {**s.settings, "draws": 3000}
    stream = SampleStream(tmp_path / "cut", (8, 3000, 6), header)
    stream.write(np.asarray(s.spins[:, :1200]))
    stream.note()  # what the periodic note does; then the process "dies"
    res = run("diagnose", tmp_path / "cut", "--model", files / "model.pbit")
    assert res.exit_code == 0, res.output
    assert "warning: the run was interrupted: 1200 of 3000 draws were written" in res.output
    assert "tau_int" in res.output
