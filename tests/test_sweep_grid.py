"""Grid files (pbitsim.sweep.grid): expansion into cells, cell keys, errors that name the key and
the line; the planted built-in model the example grid uses. No Dask here."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pbitsim import models
from pbitsim.sweep import Grid, GridError, load_grid, parse_grid
from pbitsim.sweep.grid import max_field

GRID = """\
[grid]
name = "small"
models = [
    "ferromagnet:4",
    "glass:4,p=0.9,seed=2,field=0.2",
]
methods = ["chromatic", "sequential"]
betas = [0.5, 1.0]
beta_unit = "max-field"
seeds = [0, 1]
sweeps = 200
burn_in = 20
replicas = 4
diagnostics = ["tau", "q", "exact"]

[tracking]
factor = 2.0

[quick.grid]
models = ["ferromagnet:4"]
seeds = [0]
"""


def test_parse_and_expand():
    g = parse_grid(GRID)
    assert isinstance(g, Grid) and g.name == "small"
    cells = g.cells()
    assert len(cells) == 2 * 2 * 2 * 2
    want = list(
        itertools.product(
            ["ferromagnet:4", "glass:4,p=0.9,seed=2,field=0.2"],
            ["chromatic", "sequential"],
            [0.5, 1.0],
            [0, 1],
        )
    )
    got = [
        (c.params["model"], c.params["method"], c.params["beta"], c.params["seed"]) for c in cells
    ]
    assert got == want
    assert [c.index for c in cells] == list(range(len(cells)))
    assert len({c.key for c in cells}) == len(cells)
    for c in cells:  # max-field betas: beta_used * max_i sum_j |J_ij| = beta as written
        assert c.couplings.beta == pytest.approx(c.params["beta_used"])
        assert c.params["beta_used"] * max_field(c.couplings) == pytest.approx(c.params["beta"])
        assert c.settings["diagnostics"] == ["tau", "q", "exact"]
    quick = parse_grid(GRID, quick=True)
    assert len(quick.cells()) == 1 * 2 * 2 * 1 and quick.quick


def test_cell_keys_are_stable_and_follow_parameters_and_couplings(monkeypatch):
    import pbitsim

    keys = [c.key for c in parse_grid(GRID).cells()]
    assert keys == [c.key for c in parse_grid(GRID).cells()]
    # the version is recorded, not keyed
    monkeypatch.setattr(pbitsim, "__version__", "99.0")
    assert keys == [c.key for c in parse_grid(GRID).cells()]
    # a changed setting, parameter or model changes the key of the cells it touches
    other = parse_grid(GRID.replace("burn_in = 20", "burn_in = 21")).cells()
    assert not set(keys) & {c.key for c in other}
    glass = parse_grid(GRID.replace("seed=2", "seed=3")).cells()
    changed = [a.key != b.key for a, b in zip(parse_grid(GRID).cells(), glass)]
    assert changed == [c.params["model"].startswith("glass") for c in glass]
    # the label is not the identity: the same couplings twice is one run, refused
    twice = GRID.replace('"ferromagnet:4",', '"ferromagnet:4",\n    "ferromagnet:4,J=1.0",')
    with pytest.raises(GridError, match=r"line 5, key 'grid.models': cells 0 .* same run"):
        parse_grid(twice).cells()


def test_model_file_relative_to_the_grid(tmp_path):
    c = models.spin_glass(5, seed=3, field=0.1)
    (tmp_path / "models").mkdir()
    c.save(tmp_path / "models" / "g.pbit")
    (tmp_path / "g.toml").write_text('[grid]\nmodels = ["models/g.pbit"]\nsweeps = 10\n')
    (cell,) = load_grid(tmp_path / "g.toml").cells()
    assert cell.fingerprint == c.fingerprint and cell.params["beta"] is None
    assert load_grid(tmp_path / "g.toml").name == "g"


@pytest.mark.parametrize(
    "edit, key, line, words",
    [
        (("sweeps = 200", "sweeps = 200\nsweps = 3"), "grid.sweps", 12, "unknown key"),
        (("replicas = 4", "replicas = [4, -1]"), "grid.replicas", 13, "-1"),
        (
            ('"chromatic", "sequential"', '"chromatic", "sequentail"'),
            "grid.methods",
            7,
            "sequentail",
        ),
        (('"glass:4,p=0.9,seed=2,field=0.2"', '"glass:4,q=1"'), "grid.models", 5, "bad option"),
        (("[tracking]", "[trackin]"), "trackin", 16, "unknown table"),
        (("factor = 2.0", "factor = 0.5"), "tracking.factor", 17, "> 1"),
        (('"tau", "q", "exact"', '"tau", "ess"'), "grid.diagnostics", 14, "ess"),
        (("sweeps = 200", "sweeps = 200\nthin = 3"), "grid.thin", 12, "multiple of thin"),
        (
            ("seeds = [0]\n", "seeds = [0]\n[options]\nswap_every = 2\n"),
            "options.swap_every",
            23,
            "list of alternatives",
        ),
        (
            ("seeds = [0]\n", "seeds = [0]\n[options]\nfrobnicate = [1]\n"),
            "options.frobnicate",
            23,
            "no option",
        ),
    ],
)
def test_malformed_grid_names_key_and_line(tmp_path, edit, key, line, words):
    path = tmp_path / "bad.toml"
    path.write_text(GRID.replace(*edit))
    with pytest.raises(GridError) as e:
        load_grid(path).cells()
    msg = str(e.value)
    assert f"line {line}," in msg and f"key '{key}'" in msg and str(path) in msg, msg
    assert words in msg, msg


def test_toml_syntax_error_and_missing_models(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(GRID.replace("sweeps = 200", "sweeps = = 200"))
    with pytest.raises(GridError, match=r"bad\.toml: not a valid TOML file.*line 11"):
        load_grid(path)
    with pytest.raises(GridError, match=r"key 'grid\.models'.*needs a list of models"):
        parse_grid("[grid]\nsweeps = 3\n")
    with pytest.raises(GridError, match="cannot read grid file"):
        load_grid(tmp_path / "missing.toml")


def test_planted_builtin_model_matches_the_planted_rbm():
    from pbitsim.learn import RBM

    W0, D = models.planted_rbm(6, 3, 2, seed=0, base_scale=0.1)
    want = RBM(W0 + 1.5 * D, np.zeros(6), np.zeros(3)).to_couplings()
    got = models.from_spec("planted:6x3,strength=1.5")
    assert got.fingerprint == want.fingerprint
    # the field is drawn from its own stream: the weights are the same with and without it
    fielded = models.from_spec("planted:6x3,strength=1.5,field=0.3")
    np.testing.assert_array_equal(fielded.data, got.data)
    assert np.all(fielded.h != 0) and not np.any(got.h)
    # two planted patterns: the planted direction has rank 2
    assert np.linalg.matrix_rank(D) == 2
