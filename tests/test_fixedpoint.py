"""The fixed-point rules: quantisation, overflow errors, table, comparator, exact input sums."""

import warnings

import numpy as np
import pytest

from pbitsim import Couplings, FixedPointOverflowError, FixedPointSpec, models
from pbitsim.fixedpoint import activation_table, decide, quantize_values, saturate_input


def test_spec_validation():
    with pytest.raises(ValueError, match="frac_bits"):
        FixedPointSpec(weight_bits=4, frac_bits=4)
    with pytest.raises(ValueError, match="overflow"):
        FixedPointSpec(overflow="wrap")
    with pytest.raises(TypeError, match="weight_bits"):
        FixedPointSpec(weight_bits=8.0)
    with pytest.raises(ValueError, match="acc_bits"):
        FixedPointSpec(acc_bits=4)
    with pytest.raises(ValueError, match="unknown"):
        FixedPointSpec.from_dict({"weight_bits": 8, "colour": 3})


def test_rounding_is_nearest_ties_up():
    spec = FixedPointSpec(weight_bits=6, frac_bits=1)
    codes = quantize_values([0.25, -0.25, 0.75, -0.75, 1.2, -1.3], spec)
    # value*2 = 0.5 -> 1, -0.5 -> 0, 1.5 -> 2, -1.5 -> -1, 2.4 -> 2, -2.6 -> -3
    np.testing.assert_array_equal(codes, [1, 0, 2, -1, 2, -3])


def test_overflow_is_an_error_naming_the_value():
    c = Couplings.from_edges(3, [(0, 1, 1.0), (1, 2, 9.0)])
    with pytest.raises(FixedPointOverflowError, match=r"J\[1,2\] = 9.*s3\.4"):
        c.quantized(FixedPointSpec())
    with pytest.raises(FixedPointOverflowError, match="h"):
        Couplings.from_edges(2, [(0, 1, 1.0)], h=[0.0, -8.5]).quantized()
    # -8.0 fits exactly (code -128), +8.0 does not (code 128)
    Couplings.from_edges(2, [(0, 1, -8.0)]).quantized()
    with pytest.raises(FixedPointOverflowError):
        Couplings.from_edges(2, [(0, 1, 8.0)]).quantized()


def test_overflow_names_node_labels():
    c = Couplings.from_edges(2, [(0, 1, 100.0)], names=["a", "b"])
    with pytest.raises(FixedPointOverflowError, match=r"J\[a,b\]"):
        c.quantized()


def test_saturate_mode_warns_and_clips():
    c = Couplings.from_edges(2, [(0, 1, 20.0)], beta=1.0)
    with pytest.warns(UserWarning, match="clipped"):
        q = c.quantized(FixedPointSpec.published())
    assert q.j_codes.tolist() == [31, 31]


def test_published_folds_beta():
    c = Couplings.from_edges(2, [(0, 1, 1.0)], h=[0.5, 0.0], beta=3.0)
    q = c.quantized(FixedPointSpec.published())
    assert q.j_codes.tolist() == [6, 6]  # 3.0 in s4.1
    assert q.h_codes.tolist() == [3, 0]
    # Table built for beta = 1 since beta is in the codes.
    np.testing.assert_array_equal(q.table, activation_table(FixedPointSpec.published(), 1.0))
    J, h, beta = q.effective_couplings()
    assert beta == 1.0 and J.tolist() == [3.0, 3.0]


def test_accumulator_overflow_is_an_error():
    spec = FixedPointSpec(weight_bits=8, frac_bits=4, input_bits=8, acc_bits=8)
    c = models.ferromagnet(6, J=7.0)  # 5 neighbours * code 112 = 560 > 127
    with pytest.raises(FixedPointOverflowError, match="accumulator"):
        c.quantized(spec)


def test_table_formula_and_beta_in_table():
    spec = FixedPointSpec()
    t1 = activation_table(spec, 1.0)
    t2 = activation_table(spec, 2.0)
    k = np.arange(spec.input_max + 1)
    expect = np.minimum(np.floor(65536 * (1 + np.tanh(2.0 * k / 16)) / 2 + 0.5), 65535)
    np.testing.assert_array_equal(t2, expect)
    assert t1[0] == 32768 and t1[-1] == 65535
    assert np.all(np.diff(t1.astype(np.int64)) >= 0)
    assert not np.array_equal(t1, t2)


def test_published_table_has_32_entries_and_saturates_from_22():
    t = activation_table(FixedPointSpec.published())
    assert len(t) == 32 and t[0] == 2**31
    assert np.all(t[22:] == 2**32 - 1) and t[21] < 2**32 - 1


def test_decide_rule():
    table = np.array([8, 12, 15], dtype=np.uint64)  # rng_bits = 4 style table
    # I >= 0: +1 iff T > R; tie -> -1
    assert decide(2, table, 14).item() == 1
    assert decide(2, table, 15).item() == -1
    # I < 0: -1 iff T > R; R > T -> +1; tie -> -1
    assert decide(-1, table, 11).item() == -1
    assert decide(-1, table, 13).item() == 1
    assert decide(-1, table, 12).item() == -1
    assert decide(0, table, 7).item() == 1 and decide(0, table, 8).item() == -1


def test_decide_probability_matches_tanh():
    """Over all R in [0, 2**r), P(+1) = T/2**r for I >= 0 and 1 - (T+1)/2**r for I < 0."""
    spec = FixedPointSpec(rng_bits=10, frac_bits=4)
    table = activation_table(spec, 1.0)
    r = np.arange(1024, dtype=np.uint64)
    for code in (-40, -3, 0, 5, 17):
        p_plus = np.mean(decide(np.full(1024, code), table, r) == 1)
        exact = (1 + np.tanh(code / 16)) / 2
        assert abs(p_plus - exact) <= 2 / 1024


def test_input_codes_exact_and_saturating():
    spec = FixedPointSpec(weight_bits=8, frac_bits=4, input_bits=6, acc_bits=12)
    c = models.ferromagnet(4, J=1.0, h=0.5)
    q = c.quantized(spec)
    s = np.array([1, 1, -1, 1])
    acc = 16 * np.array([1, 1, 3, 1]) + 8  # 16*(sum of others) + 8
    acc = 16 * (np.array([s.sum() - x for x in s])) + 8
    np.testing.assert_array_equal(q.input_codes(s), saturate_input(acc, spec))
    assert q.input_codes(np.ones(4)).max() == spec.input_max  # 56 -> 31


def test_quantisation_report():
    c = models.spin_glass(10, seed=3)
    rep = c.quantized().report()
    assert 0 < rep["max_abs_error_beta_J"] <= 1 / 32 + 1e-12  # half a step of s3.4
    assert rep["format"] == "s3.4"


def test_nan_never_quantises():
    with pytest.raises(ValueError, match="NaN"):
        quantize_values([np.nan], FixedPointSpec())


def test_no_warning_when_values_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models.ring(5, J=0.5).quantized(FixedPointSpec.published())
