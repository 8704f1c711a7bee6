"""``pbitsim compare``: verdict and HTML report, exit status, one clear line for bad input."""

import pytest
from click.testing import CliRunner

import pbitsim
from pbitsim import models
from pbitsim.cli import main

SPEC = "glass:5,seed=2,field=0.3,beta=0.8"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("compare")
    c = models.from_spec(SPEC)
    c.save(d / "model.pbit")
    pbitsim.sample(c, 2000, replicas=4, burn_in=50, seed=1).save(d / "a")
    pbitsim.sample(c, 2000, replicas=4, burn_in=50, seed=2).save(d / "b")
    pbitsim.sample(c, 2000, replicas=4, burn_in=50, seed=3, beta=0.55).save(d / "hot")
    pbitsim.sample(models.spin_glass(4, seed=2), 200, seed=1).save(d / "small")
    return d


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(res, *words):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    for w in words:
        assert w in lines[0], lines[0]


def test_consistent_prints_verdict_and_writes_html(files):
    out = files / "ab.html"
    res = run("compare", files / "a", files / "b", "--model", files / "model.pbit", "--out", out)
    assert res.exit_code == 0, res.output
    assert "verdict: A is consistent with B at alpha = 0.05" in res.output
    for word in ("tau_int energy", "beta_eff", "Q of the moment estimates", "G-test", "KL"):
        assert word in res.output
    assert f"report written to {out}" in res.output
    page = out.read_text()
    assert "A is consistent with B" in page and page.count("<img") == 3
    assert len(list(files.glob("ab-*.png"))) == 3


def test_against_the_exact_distribution_with_a_model_spec(files):
    res = run("compare", files / "a", "--model", SPEC, "--out", files / "exact.html")
    assert res.exit_code == 0, res.output
    assert "consistent with the exact Boltzmann distribution" in res.output


def test_inconsistent_exits_1_and_names_the_statistic(files):
    res = run(
        "compare", files / "a", files / "hot", "--model", files / "model.pbit",
        "--allow-mismatch", "--alpha", "0.01", "--out", files / "hot.html",
    )  # fmt: skip
    assert res.exit_code == 1, res.output
    verdict = [x for x in res.output.splitlines() if x.startswith("verdict:")][0]
    assert "INCONSISTENT" in verdict and "alpha = 0.01" in verdict and "beta_eff" in verdict
    assert "warning: A and B were drawn from different couplings" in res.output
    assert (files / "hot.html").exists()


def test_different_fingerprints_refused_naming_the_flag(files):
    one_line_error(
        run("compare", files / "a", files / "hot", "--out", files / "x.html"),
        "--allow-mismatch",
        "same graph",
    )
    one_line_error(
        run("compare", files / "hot", "--model", files / "model.pbit", "--out", files / "x.html"),
        "--allow-mismatch",
        "the model is",
    )


def test_bad_input_one_line(files):
    one_line_error(run("compare", files / "missing", files / "b"), "A", "missing")
    one_line_error(run("compare", files / "a", files / "small"), "n = 5", "n = 4")
    one_line_error(run("compare", files / "a"), "--model")
    one_line_error(run("compare", files / "a", "--model", "nonsense"), "--model")
    one_line_error(
        run("compare", files / "a", "--model", SPEC, "--reference", "quantized"), "design"
    )
    res = run("compare", files / "a", files / "b", "--alpha", "2")
    assert res.exit_code == 2 and "Traceback" not in res.output and "alpha" in res.output


def test_listed_in_help():
    res = run("--help")
    assert res.exit_code == 0 and "compare" in res.output
