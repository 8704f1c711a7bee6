"""One cell, run in this process (pbitsim.sweep.cell / measure): its row, its diagnostics against
exact enumeration, its failures recorded instead of raised. No Dask here."""

from __future__ import annotations

import numpy as np
import pytest

from pbitsim import models
from pbitsim.diagnostics import ExactChain
from pbitsim.sweep import parse_grid
from pbitsim.sweep.cell import execute
from pbitsim.sweep.measure import draw_chain, teacher_target


def grid(body: str, extra: str = "") -> str:
    return f"[grid]\n{body}\n{extra}"


def one_cell(text: str):
    (cell,) = parse_grid(text).cells()
    return cell, execute(cell)


def test_draw_chain_of_random_scan_is_n_single_site_updates():
    c = models.spin_glass(5, p=0.8, seed=3, field=0.2, beta=0.8)
    one = ExactChain(c, "random-scan").P.toarray()
    np.testing.assert_allclose(
        draw_chain(c, "random-scan").P, np.linalg.matrix_power(one, 5), atol=1e-13
    )
    sweep = ExactChain(c, "sequential").P
    np.testing.assert_allclose(draw_chain(c, "sequential", thin=3).P, sweep @ sweep @ sweep)


@pytest.mark.parametrize("method", ["random-scan", "chromatic"])
def test_cell_diagnostics_agree_with_exact(method):
    """Sampled tau_int and Q-hat agree with the exact values of the draw kernel (tolerances from
    the estimators' own error bars; fixed seed)."""
    cell, res = one_cell(
        grid(
            'models = ["glass:6,p=0.7,seed=1,field=0.3"]\n'
            f'methods = ["{method}"]\nbetas = [1.0]\nbeta_unit = "max-field"\n'
            "sweeps = 3000\nburn_in = 200\nreplicas = 48\nseeds = [5]\n"
            'diagnostics = ["tau", "q", "exact", "kl"]',
            "[tracking]\nfactor = 2.0\n",
        )
    )
    row = res["row"]
    assert row["status"] == "ok", row.get("traceback")
    assert row["key"] == cell.key and row["fingerprint"] == cell.fingerprint
    assert row["numba_threads"] == 1 and res["samples"] is None
    for name in ("energy", "m"):
        tau, err, exact = row[f"tau_{name}"], row[f"tau_{name}_err"], row[f"tau_{name}_exact"]
        assert row[f"tau_{name}_ok"]
        assert abs(tau - exact) < 4 * err, (name, tau, err, exact)
    assert row["q_estimates"] == 48 and row["q_steps"] == 3000
    assert abs(row["q"] - row["q_exact"]) < 4 * row["q_err"], (row["q"], row["q_err"])
    assert row["exact_tracks"] is True and row["exact_ratio"] == pytest.approx(
        row["q_exact"] / row["q"]
    )
    assert 0 < row["gap"] < 1 and "gap_even" not in row  # a field: no flip-symmetry sectors
    # plug-in KL of 144000 draws over 64 states: small, positive, with an error bar
    assert 0 < row["kl"] < 0.01 and row["kl_err"] > 0
    assert row["skipped"] is None


def test_failed_cell_is_recorded_not_raised():
    _, res = one_cell(
        grid(
            'models = ["ferromagnet:4"]\nsweeps = 10\nreplicas = 2',
            "[options]\nanneal = [[0.1, 1.0]]\nanneal_kind = ['cubic']\n",
        )
    )
    row = res["row"]
    assert row["status"] == "error"
    assert row["error"].startswith("ValueError") and "cubic" in row["error"]
    assert "Traceback" in row["traceback"] and row["time_total_s"] >= 0
    assert row["options"] == '{"anneal": [0.1, 1.0], "anneal_kind": "cubic"}'


def test_skipped_diagnostics_say_why_and_tempering_uses_the_coldest_rung():
    _, res = one_cell(
        grid(
            'models = ["glass:6,p=0.7,seed=1"]\nsweeps = 400\nreplicas = 4\n'
            'diagnostics = ["tau", "q", "exact", "kl"]',
            "[options]\nbetas = [[0.3, 0.9]]\n[exact]\nmax_n = 4\n",
        )
    )
    row = res["row"]
    assert row["status"] == "ok", row.get("traceback")
    assert row["diagnosed_beta"] == 0.9
    assert "exact: option(s) ['betas']: not a plain kernel" in row["skipped"]
    assert row["q"] is not None and row["kl"] is not None and row.get("gap") is None
    _, res = one_cell(
        grid(
            'models = ["glass:6,p=0.7,seed=1"]\nsweeps = 100\nreplicas = 4\n'
            'diagnostics = ["exact"]',
            "[exact]\nmax_n = 4\n",
        )
    )
    assert "n = 6 > exact.max_n = 4" in res["row"]["skipped"]


def test_teachers():
    c = models.spin_glass(5, p=0.8, seed=3, field=0.2, beta=0.8)
    from pbitsim.diagnostics.observables import pair_list
    from pbitsim.exact import exact_moments

    pairs = pair_list(c)
    m, C = exact_moments(c)
    own = C[pairs[:, 0], pairs[:, 1]]
    data = {"teacher": "beta", "factor": 1.0, "sigma": 0.3, "seed": 0, "fields": False}
    np.testing.assert_allclose(teacher_target(c, data, pairs), own)
    data.update(teacher="perturb", fields=True)
    t = teacher_target(c, data, pairs)
    assert t.shape == (len(pairs) + 5,)
    assert np.abs(t[: len(pairs)] - own).max() > 0.01
    np.testing.assert_array_equal(t, teacher_target(c, data, pairs))  # seeded


def test_saved_samples_are_written_whole_with_the_row(tmp_path):
    import pbitsim
    from pbitsim.sweep.store import ResultStore

    cell, res = one_cell(
        grid('models = ["glass:4,seed=1"]\nsweeps = 20\nreplicas = 3\nsave_samples = true')
    )
    s = res["samples"]
    assert res["row"]["status"] == "ok" and s.spins.shape == (3, 20, 4)
    store = ResultStore(tmp_path)
    store.write_cell(res["row"], s)
    row = store.read_cell(cell.key)
    assert row["samples_path"] == f"samples/{cell.key}/samples.npy"
    back = pbitsim.load_samples(tmp_path / row["samples_path"])
    np.testing.assert_array_equal(back.spins, s.spins)
    assert back.fingerprint == cell.fingerprint
    assert store.finished([cell.key, "other"]) == {cell.key}
    assert not list(tmp_path.rglob("*.tmp"))
