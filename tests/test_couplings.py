"""The coupling format: constructors, validation, conversions, fingerprints."""

import subprocess
import sys

import dimod
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pbitsim
from pbitsim import Couplings, CouplingsError, FixedPointSpec, models


def random_symmetric(rng, n, p=0.5):
    upper = np.triu(rng.normal(size=(n, n)) * (rng.random((n, n)) < p), 1)
    return upper + upper.T


@st.composite
def dense_models(draw, max_n=9):
    n = draw(st.integers(1, max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    J = random_symmetric(rng, n, draw(st.floats(0.0, 1.0)))
    h = rng.normal(size=n) * draw(st.sampled_from([0.0, 1.0]))
    beta = draw(st.floats(0.05, 5.0))
    return J, h, beta


# -- constructors and conversions --------------------------------------------------------------


@given(dense_models())
@settings(max_examples=60, deadline=None)
def test_dense_round_trip(m):
    J, h, beta = m
    c = Couplings.from_dense(J, h, beta)
    J2, h2 = c.to_dense()
    np.testing.assert_array_equal(J2, J)
    np.testing.assert_array_equal(h2, h)
    assert c.beta == beta
    assert c.n_edges == np.count_nonzero(np.triu(J, 1))


@given(dense_models())
@settings(max_examples=40, deadline=None)
def test_file_round_trip(tmp_path_factory, m):
    J, h, beta = m
    c = Couplings.from_dense(J, h, beta)
    path = tmp_path_factory.mktemp("f") / "m.pbit"
    c.save(path)
    d = pbitsim.load(path)
    assert d.fingerprint == c.fingerprint
    assert d.topology_fingerprint == c.topology_fingerprint
    np.testing.assert_array_equal(d.to_dense()[0], J)
    np.testing.assert_array_equal(d.coloring, c.coloring)


@given(dense_models(), st.sampled_from([dimod.SPIN, dimod.BINARY]))
@settings(max_examples=40, deadline=None)
def test_bqm_energies_agree(m, vartype):
    """BQM -> Couplings -> BQM keeps energies (up to dimod's constant offset) on random states."""
    J, h, _ = m
    n = len(h)
    rng = np.random.default_rng(n)
    bqm = Couplings.from_dense(J, h).to_bqm()
    if vartype is dimod.BINARY:
        bqm = bqm.change_vartype(dimod.BINARY, inplace=False)
    c = Couplings.from_bqm(bqm)
    back = c.to_bqm()
    spin_bqm = bqm.change_vartype(dimod.SPIN, inplace=False)
    states = rng.choice([-1, 1], size=(8, n))
    labels = list(range(n))
    for s in states:
        sample = dict(zip(labels, s.tolist()))
        e_ref = spin_bqm.energy(sample) - spin_bqm.offset
        assert c.energy(s) == pytest.approx(e_ref, abs=1e-9)
        assert back.energy(dict(zip([str(v) for v in labels], s.tolist()))) == pytest.approx(
            e_ref, abs=1e-9
        )


def test_binary_bqm_conversion_is_right():
    """x in {0,1}: E = -2 x0 x1 + x0; with x = (1+s)/2 that is J01 = 0.5, h0 = 0.0, h1 = 0.5."""
    bqm = dimod.BinaryQuadraticModel({0: 1.0, 1: 0.0}, {(0, 1): -2.0}, 0.0, dimod.BINARY)
    c = Couplings.from_bqm(bqm)
    J, h = c.to_dense()
    assert J[0, 1] == pytest.approx(0.5)
    np.testing.assert_allclose(h, [0.0, 0.5])
    # Boltzmann weights of the four states agree up to a constant energy shift.
    xs = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    e_bin = np.array([bqm.energy(dict(enumerate(x))) for x in xs])
    e_spin = c.energy(2 * xs - 1)
    np.testing.assert_allclose(e_bin - e_spin, (e_bin - e_spin)[0])


def test_from_edges_keeps_zero_weight_edges_in_topology():
    a = Couplings.from_edges(3, [(0, 1, 1.0), (1, 2, 0.0)])
    b = Couplings.from_edges(3, [(0, 1, 1.0)])
    assert a.n_edges == 2 and b.n_edges == 1
    assert a.topology_fingerprint != b.topology_fingerprint
    np.testing.assert_array_equal(a.to_dense()[0], b.to_dense()[0])


def test_networkx_round_trip():
    g = nx.cycle_graph(["a", "b", "c", "d"])
    nx.set_edge_attributes(g, 0.5, "weight")
    g.nodes["b"]["h"] = -1.0
    c = Couplings.from_networkx(g, beta=2.0)
    assert c.names == ["a", "b", "c", "d"]
    assert c.h[1] == -1.0 and c.n_edges == 4 and c.n_colors == 2
    g2 = c.to_networkx()
    assert g2["a"]["b"]["weight"] == 0.5 and g2.nodes["b"]["h"] == -1.0


def test_energy_matches_dense_formula():
    rng = np.random.default_rng(3)
    J = random_symmetric(rng, 7)
    h = rng.normal(size=7)
    c = Couplings.from_dense(J, h)
    s = rng.choice([-1, 1], size=(5, 7))
    expected = [-(0.5 * x @ J @ x + h @ x) for x in s]
    np.testing.assert_allclose(c.energy(s), expected)
    np.testing.assert_allclose(c.local_fields(s[0]), J @ s[0] + h)


# -- colouring -----------------------------------------------------------------------------------


@given(dense_models(max_n=12))
@settings(max_examples=40, deadline=None)
def test_computed_coloring_is_proper(m):
    c = Couplings.from_dense(*m)
    J, _ = c.to_dense()
    col = c.coloring
    i, j = np.nonzero(J)
    assert np.all(col[i] != col[j])
    assert c.n_colors <= (c.degrees.max() + 1 if c.n else 0)


def test_bipartite_models_get_two_colours():
    assert models.lattice_2d(6).n_colors == 2
    assert models.rbm(5, 3).n_colors == 2


@pytest.mark.parametrize(
    "coloring, message",
    [
        ([0, 0, 1], "not proper"),
        ([0, 2, 0], "missing"),
        ([0, 1], "shape"),
        ([0.0, 1.0, 0.0], "integers"),
        ([-1, 0, -1], "negative"),
    ],
)
def test_invalid_coloring(coloring, message):
    with pytest.raises(CouplingsError, match=message):
        Couplings.from_edges(3, [(0, 1, 1.0), (1, 2, 1.0)], coloring=np.array(coloring))


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "J, h, beta, message",
    [
        ([[0, 1], [2, 0]], None, 1.0, "not symmetric"),
        ([[1, 0], [0, 0]], None, 1.0, "diagonal"),
        ([[0, np.nan], [np.nan, 0]], None, 1.0, "NaN"),
        ([[0, np.inf], [np.inf, 0]], None, 1.0, "NaN or inf"),
        ([[0, 1, 0], [1, 0, 0]], None, 1.0, "square"),
        ([[0, 1], [1, 0]], [0.0, 1.0, 2.0], 1.0, "shape"),
        ([[0, 1], [1, 0]], [0.0, np.nan], 1.0, "h contains NaN"),
        ([[0, 1], [1, 0]], None, 0.0, "beta"),
        ([[0, 1], [1, 0]], None, -1.0, "beta"),
        ([[0, 1], [1, 0]], None, float("nan"), "beta"),
    ],
)
def test_from_dense_rejects(J, h, beta, message):
    with pytest.raises(CouplingsError, match=message):
        Couplings.from_dense(np.array(J, dtype=float), h, beta)


@pytest.mark.parametrize(
    "edges, message",
    [
        ([(0, 0, 1.0)], "self-loop"),
        ([(0, 5, 1.0)], "outside"),
        ([(0, 1, 1.0), (1, 0, 2.0)], "not symmetric"),
        ([(0, 1, float("nan"))], "non-finite"),
        ([(0, 1)], "triple"),
    ],
)
def test_from_edges_rejects(edges, message):
    with pytest.raises(CouplingsError, match=message):
        Couplings.from_edges(3, edges)


def test_csr_constructor_rejects_asymmetric_pattern():
    # edge 0->1 stored but not 1->0
    with pytest.raises(CouplingsError, match="not symmetric"):
        Couplings([0, 1, 1], [1], [1.0])


def test_csr_constructor_rejects_unsorted_columns():
    with pytest.raises(CouplingsError, match="sorted"):
        Couplings([0, 2, 3, 4], [2, 1, 0, 0], [1.0, 1.0, 1.0, 1.0])


def test_couplings_are_immutable():
    c = models.ring(5)
    with pytest.raises(ValueError):
        c.data[0] = 3.0


# -- fingerprints --------------------------------------------------------------------------------


def test_fingerprints_separate_topology_and_values():
    c = models.spin_glass(8, seed=2)
    d = c.replace(data=c.data * 2)
    assert d.topology_fingerprint == c.topology_fingerprint
    assert d.values_fingerprint != c.values_fingerprint
    assert d.fingerprint != c.fingerprint
    assert c.with_beta(2.0).fingerprint != c.fingerprint
    e = c.replace(fixed_point=FixedPointSpec.published())
    assert e.fingerprint != c.fingerprint and e.topology_fingerprint == c.topology_fingerprint
    # Node names are metadata, not content.
    assert c.replace(names=[f"x{i}" for i in range(8)]).fingerprint == c.fingerprint


def test_fingerprint_ignores_negative_zero():
    a = Couplings.from_edges(2, [(0, 1, 0.0)], h=[0.0, 1.0])
    b = Couplings.from_edges(2, [(0, 1, -0.0)], h=[-0.0, 1.0])
    assert a.fingerprint == b.fingerprint


def test_fingerprint_is_stable_across_processes():
    """No Python hash(), no dict ordering: another interpreter with a different hash seed agrees."""
    code = (
        "from pbitsim import models; c = models.spin_glass(12, seed=5, field=0.5);"
        "print(c.fingerprint, c.topology_fingerprint)"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
        ).stdout.strip()
        for seed in (1, 2)
    }
    c = models.spin_glass(12, seed=5, field=0.5)
    assert outs == {f"{c.fingerprint} {c.topology_fingerprint}"}


def test_fingerprint_known_value():
    """Pins the canonical byte encoding: changing it must be a deliberate, versioned decision.

    The expected digest is recomputed here from the documented layout (docs/coupling-format.md),
    independently of Couplings.topology_bytes().
    """
    import hashlib
    import struct

    c = Couplings.from_edges(3, [(0, 1, 0.5), (1, 2, -1.0)], h=[0.25, 0.0, 0.0], beta=2.0)
    topo = (
        b"pbitsim-topology-v1\0"
        + struct.pack("<Q", 3)
        + struct.pack("<4q", 0, 1, 3, 4)
        + struct.pack("<4i", 1, 0, 2, 1)
        + struct.pack("<3i", *c.coloring.tolist())
    )
    values = (
        b"pbitsim-values-v1\0"
        + struct.pack("<4d", 0.5, 0.5, -1.0, -1.0)
        + struct.pack("<3d", 0.25, 0.0, 0.0)
        + struct.pack("<d", 2.0)
        + struct.pack("<I", 0)
    )
    t = hashlib.sha256(topo).digest()
    v = hashlib.sha256(values).digest()
    assert c.topology_fingerprint == t.hex()
    assert c.values_fingerprint == v.hex()
    assert c.fingerprint == hashlib.sha256(b"pbitsim-couplings-v1\0" + t + v).hexdigest()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(indptr=[0, 1.5, 2], indices=[1, 0], data=[1, 1]), "indptr must hold integers"),
        (dict(indptr=[0, 1, 2], indices=[1, 2**40], data=[1, 1]), "indices has values outside"),
        (dict(indptr=[0, 1, 2], indices=[1, 0], data=[1j, 1j]), "J is complex"),
        (dict(indptr=[0, 1, 2], indices=[1, 0], data=[1, 1], h=["a", "b"]), "h must hold real"),
        (dict(indptr=[0, 1, 2], indices=[1, 0], data=[1, 1], coloring=[0, 2]), "colour 2"),
        (dict(indptr=[0, 1, 2], indices=[1, 0], data=[1, 1], coloring=[-5, 0]), "negative"),
    ],
)
def test_constructor_refuses_what_numpy_would_convert(kwargs, message):
    """Fractions, out-of-range indices, complex or text values and colours beyond 0..n-1 are
    refused with the field named, instead of being truncated, wrapped or dropped."""
    with pytest.raises(CouplingsError, match=message):
        Couplings(**kwargs)


def test_colour_bound_costs_nothing_for_a_huge_colour():
    """The largest colour is bounded by n before anything is sized by it."""
    c = Couplings.from_edges(3, [(0, 1, 1.0)])
    with pytest.raises(CouplingsError, match=r"colour 2147483647 \(spin 2\)"):
        c.replace(coloring=np.array([0, 1, 2**31 - 1]))


# -- validation in chunks, and the shared topology ------------------------------------------------


def test_chunked_validation_accepts_what_one_pass_accepts(monkeypatch):
    """Checked a few rows at a time (temporaries independent of the model's size), a valid model
    gets the same arrays and fingerprints."""
    from pbitsim import couplings as cm

    c = models.spin_glass(40, p=0.3, seed=3, field=0.2)
    monkeypatch.setattr(cm, "_CHUNK", 7)
    assert len(list(cm._row_chunks(c.indptr))) > 10
    cm._Topology._recent.clear()  # no shortcut: validate from scratch
    d = Couplings(c.indptr.copy(), c.indices.copy(), c.data.copy(), c.h, c.beta)
    assert d.fingerprint == c.fingerprint
    np.testing.assert_array_equal(d.coloring, c.coloring)


@pytest.mark.parametrize(
    "edit, message",
    [
        ("asymmetric_value", "not symmetric"),
        ("asymmetric_pattern", "not symmetric"),
        ("unsorted", "sorted and unique"),
        ("diagonal", "diagonal"),
        ("colour_clash", "not proper"),
    ],
)
def test_chunked_validation_finds_faults_in_late_chunks(monkeypatch, edit, message):
    from pbitsim import couplings as cm

    c = models.random_regular(60, 4, seed=1)
    monkeypatch.setattr(cm, "_CHUNK", 9)
    cm._Topology._recent.clear()
    indptr, indices, data = c.indptr.copy(), c.indices.copy(), c.data.copy()
    coloring = c.coloring.copy()
    last = slice(indptr[-2], indptr[-1])  # the last row: in the last chunk
    if edit == "asymmetric_value":
        data[indptr[-2]] += 1.0
    elif edit == "asymmetric_pattern":
        indices[indptr[-2]] = next(j for j in range(59) if j not in set(indices[last]))
        indices[last] = np.sort(indices[last])
    elif edit == "unsorted":
        indices[last] = indices[last][::-1]
    elif edit == "diagonal":
        indices[indptr[-2]] = 59
        indices[last] = np.sort(indices[last])
    else:
        coloring[59] = coloring[indices[indptr[-2]]]
    with pytest.raises(CouplingsError, match=message):
        Couplings(indptr, indices, data, coloring=coloring)


def test_same_topology_is_validated_once_and_values_still_checked():
    c = models.spin_glass(12, p=0.5, seed=1, field=0.1)
    rebuilt = Couplings(
        c.indptr.copy(), c.indices.copy(), c.data * 2, c.h, coloring=c.coloring.copy()
    )
    assert rebuilt._topology is c._topology  # equal arrays: the validated topology is reused
    assert rebuilt.topology_fingerprint == c.topology_fingerprint
    assert c.replace(data=c.data * 3)._topology is c._topology
    bad = c.data.copy()
    bad[0] += 1.0  # J[i,j] != J[j,i]
    with pytest.raises(CouplingsError, match="not symmetric"):
        Couplings(c.indptr.copy(), c.indices.copy(), bad, c.h, coloring=c.coloring.copy())
    with pytest.raises(CouplingsError, match="not symmetric"):
        c.replace(data=bad)
    with pytest.raises(CouplingsError, match="NaN"):
        c.replace(data=np.full_like(c.data, np.nan))
    with pytest.raises(CouplingsError, match="shape"):
        c.replace(h=np.zeros(3))
    other = c.coloring.copy()[::-1]  # another colouring: validated (and refused) afresh
    with pytest.raises(CouplingsError, match="coloring"):
        Couplings(c.indptr.copy(), c.indices.copy(), c.data, coloring=other)


def test_transpose_permutation_pairs_each_entry_with_its_mirror():
    c = models.spin_glass(15, p=0.4, seed=2)
    t = c._topology.tperm
    rows = np.repeat(np.arange(c.n), c.degrees)
    np.testing.assert_array_equal(rows[t], c.indices)
    np.testing.assert_array_equal(c.indices[t], rows)
    assert sorted(t.tolist()) == list(range(c.nnz))


def test_fingerprints_hash_the_documented_bytes_piece_by_piece():
    import hashlib

    c = models.spin_glass(10, p=0.5, seed=4, field=-0.0)
    assert c.topology_fingerprint == hashlib.sha256(c.topology_bytes()).hexdigest()
    assert c.values_fingerprint == hashlib.sha256(c.values_bytes()).hexdigest()
