"""firmware/costmodel.py: the resource estimate made before place and route, checked against the
committed calibration table (builds it was not fitted on), and the lane choice it drives. No
synthesis runs here: the table holds real builds' numbers."""

import numpy as np
import pytest

pytest.importorskip("amaranth")
from pbitsim.firmware import costmodel as CM  # noqa: E402
from pbitsim.firmware.synth import test_graph  # noqa: E402
from pbitsim.firmware.tops import BOARDS  # noqa: E402

from pbitsim import models  # noqa: E402
from pbitsim.board.design import HardwareDesign  # noqa: E402

ROWS = CM.load_table()
GROUPS = sorted({(r["part"], r["design"]) for r in ROWS})


def test_table_covers_every_board_and_preset():
    parts = {b.part for b in BOARDS.values()}
    for part in parts:
        for design in ("default", "published"):
            fit = [r for r in ROWS if (r["part"], r["design"], r["role"]) == (part, design, "fit")]
            check = [
                r for r in ROWS if (r["part"], r["design"], r["role"]) == (part, design, "check")
            ]
            assert len(fit) >= len(CM.FEATURES), (part, design, "too few fit rows")
            assert len(check) >= 2, (part, design, "too few check rows")
            # the fit rows must separate the terms each resource is fitted on (those not zero in
            # every row: the iCE40 has no LUT-RAM)
            X = np.array([CM._row_x(r) for r in fit])
            for key, names in CM.USES.items():
                cols = [CM.FEATURES.index(f) for f in names if X[:, CM.FEATURES.index(f)].any()]
                assert np.linalg.matrix_rank(X[:, cols]) == len(cols), (part, design, key)


def test_table_features_follow_from_the_builds():
    # The memory features stored with each row are what the cost model computes for that
    # build's topology and lanes (the table and the code agree).
    for r in ROWS:
        c = test_graph(r["graph"], r["n"])
        assert int(c.n_edges) == r["edges"] and int(c.degrees.max()) == r["max_degree"]
        assert CM.slots_of(c, r["lanes"]) == r["slots"]
        got = CM.lane_memory_features(
            r["part"], HardwareDesign.from_name(r["design"]), r["lanes"], r["slots"],
            r["max_degree"], 1 + r["n"] + r["edges"],
        )  # fmt: skip
        assert got == (r["lane_lutram_cells"], r["lane_bram_blocks"]), r


def test_memory_placement_rule():
    # ECP5: Yosys keeps a shallow lane memory in LUT-RAM and moves a deep one to block RAM
    # (seen in the calibration builds' logs: 39 and 44 deep -> DPR16X4, 68 and 135 -> PDPW16KD).
    assert CM._placed("ecp5-85f", 39, 60) == (3 * 15, 0)
    assert CM._placed("ecp5-85f", 44, 64) == (3 * 16, 0)
    assert CM._placed("ecp5-85f", 68, 64) == (0, 2)
    assert CM._placed("ecp5-85f", 135, 60) == (0, 2)
    # iCE40: block RAM only, the fewest 4 kbit blocks
    assert CM._placed("up5k", 40, 64) == (0, 4)
    assert CM._placed("up5k", 300, 64) == (0, 8)
    assert CM._placed("up5k", 1500, 2) == (0, 1)


@pytest.mark.parametrize(
    "row",
    [r for r in ROWS if r["role"] == "check"],
    ids=lambda r: f"{r['part']}-{r['design']}-{r['graph']}-{r['n']}-L{r['lanes']}",
)
def test_predicts_builds_it_was_not_fitted_on(row):
    model = CM.fit(ROWS)[(row["part"], row["design"])]
    x = CM._row_x(row)
    est = model.predict(*x[1:].astype(int))
    assert abs(est["logic"] - row["logic"]) <= CM.LOGIC_TOLERANCE * row["logic"], (est, row)
    assert abs(est["bram"] - row["bram"]) <= max(1, CM.BRAM_TOLERANCE * row["bram"]), (est, row)


def test_fit_ignores_check_rows_and_recovers_a_linear_law():
    true = {"logic": (500.0, 3.0, 7.0, 250.0, 0.0, 0.0), "bram": (4.0, 0.0, 0.02, 5.0, 0.0, 0.0)}
    rows = []
    for role, pts in (
        ("fit", [(16, 24, 1), (64, 150, 1), (64, 150, 4), (128, 200, 2), (48, 60, 3)]),
        ("check", [(100, 270, 3)]),
    ):
        for n, e, lanes in pts:
            x = np.array([1, n, e, lanes, 0, 0])
            rows.append(
                dict(part="p", design="d", n=n, edges=e, lanes=lanes, role=role,
                     logic=float(x @ true["logic"]), bram=float(x @ true["bram"]))
            )  # fmt: skip
    rows[-1]["logic"] = 1e9  # a check row must not move the fit
    m = CM.fit(rows)[("p", "d")]
    assert np.allclose(m.logic, true["logic"], rtol=1e-6, atol=1e-6)
    assert m.predict(100, 270, 3)["logic"] == round(
        np.array([1, 100, 270, 3, 0, 0]) @ true["logic"]
    )
    assert m.rows == 5 and m.n_range == (16, 128) and m.lanes_range == (1, 4)
    assert m.predict(1000, 3000, 1)["extrapolated"]


def test_table_rows_are_checked(tmp_path):
    bad = tmp_path / "t.json"
    bad.write_text('{"rows": [{"part": "up5k"}]}')
    with pytest.raises(ValueError, match="has no 'design'"):
        CM.load_table(bad)


def _model(part, logic, bram):
    return CM.CostModel(
        part=part, design="default", logic=(*logic, 0, 0), bram=(*bram, 0, 0),
        spram=(0,) * 6, rows=8,
        n_range=(8, 4096), lanes_range=(1, 64),
    )  # fmt: skip


@pytest.fixture
def known_models(monkeypatch):
    """Cost models with known coefficients in place of the table's, so that the lane choice and
    the advice can be checked by hand: UP5K logic = 1000 + 10 n + 5 E + 500 L, BRAM = 2 + 3 L;
    ECP5 logic = 2000 + 20 n + 10 E + 1000 L, BRAM = 4 L."""
    models_ = {
        ("up5k", "default"): _model("up5k", (1000, 10, 5, 500), (2, 0, 0, 3)),
        ("ecp5-85f", "default"): _model("ecp5-85f", (2000, 20, 10, 1000), (0, 0, 0, 4)),
    }
    monkeypatch.setattr(CM, "_MODELS", models_)
    return models_


def test_largest_lane_count_that_fits_is_chosen(known_models):
    c = test_graph("triangular", 64)  # E = 161; largest colour class 22
    plan = CM.plan_lanes(BOARDS["icebreaker"], HardwareDesign.default(), c)
    # 1000 + 640 + 805 + 500 L <= 0.96 * 5280 = 5068.8  ->  L <= 5.2; BRAM 2 + 3 L <= 30 -> L <= 9
    assert BOARDS["icebreaker"].logic_ceiling == 0.96
    assert plan.fits and plan.lanes == 5
    assert plan.estimate["logic"] == 1000 + 640 + 805 + 2500 and plan.estimate["bram"] == 17
    assert [k for k, _, _ in plan.candidates] == list(range(1, CM.max_useful_lanes(c) + 1))
    assert [ok for _, _, ok in plan.candidates][:7] == [True] * 5 + [False] * 2
    assert "5 lane(s) (the most that fit)" in plan.describe()[0]
    ulx = CM.plan_lanes(BOARDS["ulx3s"], HardwareDesign.default(), c)
    assert ulx.fits and ulx.lanes == CM.max_useful_lanes(c)  # room for every useful lane


def test_requested_lanes_are_checked(known_models):
    spec = BOARDS["icebreaker"]
    c = test_graph("triangular", 64)
    top = CM.max_useful_lanes(c)
    with pytest.raises(ValueError, match=f"largest colour class has {top} p-bits"):
        CM.plan_lanes(spec, HardwareDesign.default(), c, lanes=top + 1)
    with pytest.raises(ValueError, match="lanes must be an int >= 1"):
        CM.plan_lanes(spec, HardwareDesign.default(), c, lanes=0)
    asked = CM.plan_lanes(spec, HardwareDesign.default(), c, lanes=6)
    assert asked.requested and asked.lanes == 6 and not asked.fits
    assert "6 lanes do not fit the icebreaker" in asked.advice()
    assert "At most 5 lane(s) fit" in asked.advice()
    assert CM.plan_lanes(spec, HardwareDesign.default(), c, lanes=2).fits


def test_too_large_model_gets_advice(known_models):
    c = test_graph("triangular", 1024)
    plan = CM.plan_lanes(BOARDS["icebreaker"], HardwareDesign.default(), c)
    assert not plan.fits and plan.lanes == 1
    text = plan.advice()
    assert "1024 p-bits" in text and "do not fit the icebreaker with any lane count" in text
    # at 1 lane: 1500 + 10 n + 5 E <= 0.96 * 5280 with E = (E/n) n
    ratio = c.n_edges / c.n
    n_fit = max(k for k in range(1, 1025) if 1500 + 10 * k + 5 * round(ratio * k) <= 5068.8)
    assert f"What would fit: at most about {n_fit} p-bits" in text
    # and on the ULX3S: 2000 + 20 n + 10 E + 1000 L <= 0.9 * 83640
    lanes = max(
        k for k in range(1, CM.max_useful_lanes(c) + 1)
        if 2000 + 20 * 1024 + 10 * c.n_edges + 1000 * k <= 0.9 * 83640
    )  # fmt: skip
    assert f"this model fits the ulx3s with up to {lanes} lanes" in text


def test_no_calibration_builds_unchecked(monkeypatch):
    monkeypatch.setattr(CM, "_MODELS", {})
    plan = CM.plan_lanes(BOARDS["icebreaker"], HardwareDesign.default(), models.ring(8, J=0.5))
    assert plan.fits and plan.lanes == 1 and "no calibration" in plan.describe()[0]


def test_design_names():
    assert CM.design_name(HardwareDesign.default()) == "default"
    assert CM.design_name(HardwareDesign.published()) == "published"
    custom = HardwareDesign(rng="lfsr32-xnor")
    assert CM.design_name(custom) == "custom"
    plan = CM.plan_lanes(BOARDS["ulx3s"], custom, models.ring(8, J=0.5))
    assert plan.design == "custom" and plan.model is CM.model_for("ecp5-85f", "default")
