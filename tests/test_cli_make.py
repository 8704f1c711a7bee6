"""``pbitsim make SOURCE -o MODEL.pbit`` and model arguments everywhere (specs, matrices, edge
lists, dimod BQMs, networkx files)."""

from __future__ import annotations

import json
import re

import dimod
import networkx as nx
import numpy as np
import pytest
from click.testing import CliRunner

import pbitsim
from pbitsim import Couplings, models
from pbitsim.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def make(source, out, *extra) -> Couplings:
    res = run("make", source, "-o", out, *extra)
    assert res.exit_code == 0, res.output
    assert re.search(r"wrote .*: \d+ spins, \d+ couplings", res.output)
    return pbitsim.load(out)


@pytest.fixture(scope="module")
def glass():
    return models.spin_glass(7, seed=4, field=0.4, beta=0.6)


def test_builtin_spec(tmp_path):
    c = make("lattice:4x6,beta=0.44", tmp_path / "m.pbit")
    assert c == models.lattice_2d(4, 6, beta=0.44)
    assert make("rbm:3x2", tmp_path / "r.pbit", "--beta", 2) == models.rbm(3, 2, beta=2.0)


def test_dense_matrix_and_fields(glass, tmp_path):
    J, h = glass.to_dense()
    np.save(tmp_path / "J.npy", J)
    np.save(tmp_path / "h.npy", h)
    c = make(tmp_path / "J.npy", tmp_path / "m.pbit", "--fields", tmp_path / "h.npy", "--beta", 0.6)
    assert c == glass
    np.savez(tmp_path / "model.npz", J=J, h=h, beta=0.6)
    assert make(tmp_path / "model.npz", tmp_path / "z.pbit") == glass


def test_edge_list_with_header_comments_and_default_weight(tmp_path):
    (tmp_path / "e.csv").write_text("i,j,weight\n# a triangle\n0,1,0.5\n1,2,-1\n0 2\n")
    c = make(tmp_path / "e.csv", tmp_path / "m.pbit")
    assert c == Couplings.from_edges(3, [(0, 1, 0.5), (1, 2, -1.0), (0, 2, 1.0)])


def test_edge_list_with_names(tmp_path):
    (tmp_path / "e.tsv").write_text("a\tb\t2\nb\tc\t-1\n")
    c = make(tmp_path / "e.tsv", tmp_path / "m.pbit")
    assert c.names == ["a", "b", "c"] and c.n_edges == 2
    J, _ = c.to_dense()
    assert J[0, 1] == 2 and J[1, 2] == -1


def test_dimod_bqm_json(tmp_path):
    bqm = dimod.BinaryQuadraticModel({0: 0.5, 1: -1}, {(0, 1): -2, (1, 2): 1}, 3.0, "SPIN")
    (tmp_path / "bqm.json").write_text(json.dumps(bqm.to_serializable()))
    c = make(tmp_path / "bqm.json", tmp_path / "m.pbit", "--beta", 0.5)
    assert c == Couplings.from_bqm(bqm, beta=0.5)
    # same distribution: pbitsim's energy is dimod's without the offset
    s = np.array([[1, -1, 1], [-1, -1, 1]])
    np.testing.assert_allclose(c.energy(s), bqm.energies((s, [0, 1, 2])) - 3.0)


@pytest.mark.parametrize("fmt", ["graphml", "gml", "json"])
def test_networkx_files(glass, tmp_path, fmt):
    g = glass.to_networkx()
    path = tmp_path / f"g.{fmt}"
    if fmt == "graphml":
        nx.write_graphml(g, path)
    elif fmt == "gml":
        nx.write_gml(g, path)
    else:
        path.write_text(json.dumps(nx.node_link_data(g, edges="links")))
    c = make(path, tmp_path / "m.pbit", "--beta", glass.beta)
    np.testing.assert_allclose(c.to_dense()[0], glass.to_dense()[0])
    np.testing.assert_allclose(c.h, glass.h)


def test_every_command_takes_every_kind_of_model(glass, tmp_path):
    """sample, info and diagnose --model read the same sources as make."""
    J, h = glass.to_dense()
    np.save(tmp_path / "J.npy", J)
    res = run("info", tmp_path / "J.npy")
    assert res.exit_code == 0 and f"{glass.n_edges}" in res.output, res.output
    res = run("info", "glass:7,seed=4,field=0.4,beta=0.6")
    assert res.exit_code == 0 and glass.fingerprint in res.output, res.output
    res = run("sample", "ring:6,beta=0.5", "--sweeps", 20, "--seed", 1, "--out", tmp_path / "r")
    assert res.exit_code == 0, res.output
    by_spec = run("diagnose", tmp_path / "r", "--model", "ring:6,beta=0.5")
    assert by_spec.exit_code == 0 and "energy" in by_spec.output, by_spec.output
    models.ring(6, beta=0.5).save(tmp_path / "ring.pbit")
    by_file = run("diagnose", tmp_path / "r", "--model", tmp_path / "ring.pbit")
    assert by_file.output == by_spec.output


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (np.array([[0, 1], [2, 0]]), 1, r"J.npy: J is not symmetric"),
        (1j * np.array([[0, 1], [1, 0]]), 1, r"J.npy: J is complex"),
        (np.ones((2, 3)), 1, r"J.npy: J must be a square n x n matrix"),
        (np.array([[0, np.nan], [np.nan, 0]]), 1, r"J.npy: J contains NaN"),
    ],
)
def test_bad_matrices(tmp_path, content, status, message):
    np.save(tmp_path / "J.npy", content)
    res = run("make", tmp_path / "J.npy", "-o", tmp_path / "m.pbit")
    assert res.exit_code == status and re.search(message, res.output), res.output
    assert not (tmp_path / "m.pbit").exists()


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("e.csv", "0,1,1\n0,1,2,3\n", r"e.csv line 2: '0,1,2,3' is not 'i j weight'"),
        ("e.csv", "0,1,1\n1,2,heavy\n", r"e.csv line 2: weight 'heavy' is not a number"),
        ("e.csv", "0,1,1\n1,1,1\n", r"e.csv: edge \(1, 1\) is a self-loop"),
        ("e.csv", "0,1,1\n1,0,2\n", r"e.csv: J is not symmetric"),
        ("e.csv", "0,1,1\n1,99999999,1\n", r"e.csv: node 99999999 makes 100000000 spins"),
        ("e.csv", "# nothing\n", r"e.csv: no edges found"),
        ("m.json", "{not json", r"m.json: not valid JSON"),
        ("m.json", '{"type": "BinaryQuadraticModel"}', r"m.json: not a dimod BQM"),
        ("m.json", "[1, 2]", r"m.json: JSON that is neither a dimod BQM"),
        ("g.graphml", "<graphml>", r"g.graphml: not a readable graph"),
        ("m.xyz", "0 1 1", r"m.xyz: unknown model file type .xyz"),
    ],
)
def test_bad_files_name_the_file_and_the_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    res = run("make", tmp_path / name, "-o", tmp_path / "m.pbit")
    assert res.exit_code == 1 and re.search(message, res.output), res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nonsense", "-o", "m.pbit"], r"SOURCE: 'nonsense' is neither an existing model file"),
        (["missing.csv", "-o", "m.pbit"], r"SOURCE: 'missing.csv' is neither"),
        (["ring:5", "-o", "no/such/m.pbit"], r"-o/--out: the folder no/such does not exist"),
        (["ring:5", "-o", "m.pbit", "--beta", -1], r"'--beta': '-1' must be a finite"),
        (["ring:5"], r"Missing option '-o'"),
        (["torus:5", "-o", "m.pbit"], r"SOURCE: unknown model spec 'torus:5'"),
    ],
)
def test_bad_arguments(args, message):
    res = run("make", *args)
    assert res.exit_code == 2 and re.search(message, res.output), res.output


def test_fields_only_with_matrices_and_edge_lists(tmp_path):
    np.save(tmp_path / "h.npy", np.zeros(5))
    res = run("make", "ring:5", "-o", tmp_path / "m.pbit", "--fields", tmp_path / "h.npy")
    assert res.exit_code == 2 and "--fields: applies to a .npy matrix" in res.output


def test_listed_in_help():
    res = run("--help")
    assert res.exit_code == 0 and "make" in res.output
    assert run("make", "--help").exit_code == 0
