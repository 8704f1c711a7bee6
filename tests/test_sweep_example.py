"""The example grid sims/predictor_tracking.{py,toml} in its --quick variant: it runs on the
embedded cluster, writes its table and plots, and its measurement is sound (the measured Q-hat
agrees with the exact Q(M) within its error bar in every cell)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

SIMS = Path(__file__).resolve().parents[1] / "sims"


def test_predictor_tracking_quick(tmp_path):
    sys.path.insert(0, str(SIMS))
    try:
        module = importlib.import_module("predictor_tracking")
    finally:
        sys.path.remove(str(SIMS))
    res = module.main(["--quick", "--out", str(tmp_path), "--quiet"])
    s, rows = res["summary"], res["rows"]
    for name in ("predictor_tracking.png", "predictor_tracking.csv", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "sweep" / "results.parquet").exists()
    assert (tmp_path / "sweep" / "summary.png").exists()
    assert s["cells"] == s["ok"] == len(rows) == 8 and s["factor"] == 2.0
    assert s["multi_mode_tracks"] == sum(r["multi_mode_tracks"] for r in rows)
    assert s["single_gap_tracks"] == sum(r["single_gap_tracks"] for r in rows)
    for r in rows:  # the measurement: Q-hat agrees with exact Q(M) (4 sigma, fixed seeds)
        assert abs(r["q"] - r["q_exact"]) < 4 * r["q_err"], (r["model"], r["method"], r["beta"])
    # the single gap misses the cold ferromagnet's Q by far; the multi-mode predictor does not
    cold = [r for r in rows if r["model"] == "ferromagnet:6" and r["beta"] == 2.0]
    assert cold and all(r["single_gap_ratio"] < 0.1 for r in cold)
    assert all(r["multi_mode_tracks"] for r in cold)
