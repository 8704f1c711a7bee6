"""``pbitsim sample``, ``pbitsim demo`` and the built-in model specs they read."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

import pbitsim
from pbitsim import models
from pbitsim.cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("lattice:4x6,beta=0.44", models.lattice_2d(4, 6, beta=0.44)),
        ("lattice:5", models.lattice_2d(5)),
        ("lattice:4,periodic=false", models.lattice_2d(4, periodic=False)),
        ("sk:16,seed=3", models.sherrington_kirkpatrick(16, seed=3)),
        ("rbm:6x4", models.rbm(6, 4)),
        ("glass:12,p=0.5,field=0.3,beta=0.7", models.spin_glass(12, p=0.5, field=0.3, beta=0.7)),
        ("regular:20,degree=4,weights=gauss", models.random_regular(20, 4, weights="gauss")),
        ("ring:7,h=0.5", models.ring(7, h=0.5)),
        ("ferromagnet:5,J=0.3", models.ferromagnet(5, J=0.3)),
    ],
)
def test_from_spec(spec, expected):
    assert models.from_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("torus:4", "unknown model spec.*valid specs: lattice:16x16"),
        ("lattice", "unknown model spec"),
        ("lattice:4x", "bad size"),
        ("rbm:6", "bad size"),
        ("lattice:2x2x2", "bad size"),
        ("sk:8,temperature=2", "sk takes seed, beta"),
        ("sk:8,seed=x", "seed='x' is not a int"),
        ("lattice:4,periodic=perhaps", "is not a bool"),
    ],
)
def test_from_spec_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        models.from_spec(spec)


def test_sample_spec_to_disk(tmp_path):
    out = tmp_path / "run"
    r = invoke(
        "sample",
        "lattice:6x6,beta=0.3",
        "--sweeps",
        40,
        "--replicas",
        3,
        "--thin",
        2,
        "--burn-in",
        5,
        "--seed",
        7,
        "--out",
        out,
    )
    assert r.exit_code == 0, r.output
    assert "3 rows x 20 draws x 36 spins" in r.output
    s = pbitsim.load_samples(out)
    ref = pbitsim.sample(models.lattice_2d(6, beta=0.3), 40, replicas=3, thin=2, burn_in=5, seed=7)
    np.testing.assert_array_equal(s.spins, ref.spins)
    assert s.seed == 7


def test_sample_pbit_file_with_options(tmp_path):
    c = models.spin_glass(8, seed=1, field=0.2)
    c.save(tmp_path / "m.pbit")
    r = invoke(
        "sample",
        tmp_path / "m.pbit",
        "--sweeps",
        30,
        "--method",
        "sequential",
        "--replicas",
        2,
        "--betas",
        "0.3,0.6,1.0",
        "--swap-every",
        3,
        "--seed",
        1,
    )
    assert r.exit_code == 0, r.output
    assert "6 rows x 30 draws x 8 spins" in r.output and "swap_acceptance" in r.output
    r = invoke("sample", tmp_path / "m.pbit", "--sweeps", 30, "--anneal", "0.1,2", "--seed", 1)
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nonsense", "--sweeps", 5], "neither an existing model file .* nor a model spec"),
        (["lattice:4x", "--sweeps", 5], "bad size"),
        (["lattice:4", "--sweeps", 5, "--method", "gibbs"], "available: .*chromatic"),
        (["lattice:4", "--sweeps", 5, "--thin", 2], "multiple of thin"),
        (["lattice:4", "--sweeps", 5, "--betas", "0.5,x"], "comma-separated"),
        (["lattice:4"], "Missing option '--sweeps'"),
    ],
)
def test_sample_errors(args, message):
    r = invoke("sample", *args)
    assert r.exit_code != 0
    assert re.search(message, r.output), r.output


@pytest.mark.parametrize("command", ["sample", "demo"])
def test_help(command):
    r = invoke(command, "--help")
    assert r.exit_code == 0 and "Usage" in r.output
    assert command in invoke("--help").output


def test_demo(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    figures = []
    save = Figure.savefig
    monkeypatch.setattr(
        Figure, "savefig", lambda fig, *a, **k: figures.append(fig) or save(fig, *a, **k)
    )
    png = tmp_path / "demo.png"
    html = tmp_path / "demo.html"
    r = invoke("demo", "--out", png, "--sweeps", 4000, "--replicas", 8, "--report", html)
    assert r.exit_code == 0, r.output
    # the whole loop: an emulated board, identical to the simulator, consistent with both
    assert "bit-identical to the hardware-faithful simulator" in r.output
    assert "board vs simulator: A is consistent" in r.output
    assert "board vs exact: A is consistent with the exact quantised-chain" in r.output
    assert html.exists() and "<html" in html.read_text().lower()
    assert "OK, every moment within 5 SE" in r.output and "KL(sampled || exact)" in r.output
    assert re.search(r"\(8000 draws, seed 0\) in [\d.]+ s", r.output)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the plot shows the scatter expected from the sample size: a band around sampled = exact
    (ax,) = figures[0].axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "+-2 sd of 8000 independent draws" in labels
    band = ax.collections[0].get_paths()[0].vertices
    x, y = band[:, 0], band[:, 1]
    inside = (x > 0.01) & (x < 0.5)
    assert np.all(np.abs(y[inside] - x[inside]) <= 2 * np.sqrt(x[inside] / 8000) + 1e-12)
