"""Every bad input of issue 15 ("Trust") gets one clear line naming the problem, no traceback.

Exit status as click's: 2 for a bad argument value, 1 for a bad file or bad data. One test (or
one parametrised case) per input listed in the issue; the fuzz of ``pbitsim.load`` is
``test_fuzz_load.py``, the interrupted streamed run ``test_sampling.py``, ``pbitsim make``
``test_cli_make.py``.
"""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest
from click.testing import CliRunner

import pbitsim
from pbitsim import CouplingsError, models
from pbitsim.cli import main
from pbitsim.fileformat import CouplingFileError, decode, encode
from pbitsim.samples import SamplesFileError


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(res, status: int, pattern: str) -> None:
    """The command failed with ``status``, printed no traceback, and its error line matches."""
    assert res.exit_code == status, res.output
    assert "Traceback" not in res.output and res.exc_info[0] is SystemExit, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.output
    assert re.search(pattern, errors[0]), errors[0]


@pytest.fixture(scope="module")
def glass():
    return models.spin_glass(6, seed=1, field=0.3)


@pytest.fixture(scope="module")
def files(tmp_path_factory, glass):
    d = tmp_path_factory.mktemp("inputs")
    glass.save(d / "model.pbit")
    pbitsim.sample(glass, 400, replicas=4, seed=1).save(d / "run")
    return d


def copy_run(files, tmp_path, spins) -> str:
    """A samples file pair whose spins are replaced by ``spins`` (metadata adjusted)."""
    meta = json.loads((files / "run.json").read_text())
    if np.ndim(spins) == 3:  # else the metadata keeps its shape: the .npy is what is wrong
        meta["shape"] = list(np.shape(spins))
    meta["draws_written"] = meta["shape"][1]
    meta["info"] = {}
    np.save(tmp_path / "bad.npy", spins)
    (tmp_path / "bad.json").write_text(json.dumps(meta))
    return str(tmp_path / "bad")


# -- .pbit files: bounded validation of colourings and every header field ----------------------


def _with_colour(c, colour: int) -> bytes:
    blob = bytearray(encode(c)[:-32])
    hlen = struct.unpack_from("<I", blob, 12)[0]
    struct.pack_into("<i", blob, 16 + hlen + 8 * c.n, colour)
    import hashlib

    return bytes(blob) + hashlib.sha256(bytes(blob)).digest()


@pytest.mark.parametrize("colour", [2**31 - 1, 10**6])
def test_huge_colour_is_refused_in_one_short_line(glass, colour):
    """Was: set(range(max + 1)) allocated until the kernel killed the process; a colour of 10**6
    gave a message of several megabytes."""
    with pytest.raises(CouplingFileError) as err:
        decode(_with_colour(glass, colour), "model.pbit")
    text = str(err.value)
    assert text.startswith("model.pbit: coloring uses colour") and len(text) < 200
    assert f"colour {colour}" in text


def test_many_missing_colours_are_summarised():
    coloring = np.r_[np.zeros(19, int), 19]  # colours 0 and 19 of 20 spins, no edges
    with pytest.raises(CouplingsError, match=r"missing 1, 2, 3, 4, 5 and 13 more") as err:
        pbitsim.Couplings.from_edges(20, [], coloring=coloring)
    assert len(str(err.value)) < 200


def test_header_without_beta(glass, tmp_path):
    """Was: KeyError."""
    blob = encode(glass)[:-32]
    hlen = struct.unpack_from("<I", blob, 12)[0]
    header = json.loads(blob[16 : 16 + hlen])
    del header["beta"]
    hb = json.dumps(header).encode()
    body = blob[:12] + struct.pack("<I", len(hb)) + hb + blob[16 + hlen :]
    import hashlib

    (tmp_path / "m.pbit").write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(CouplingFileError, match=r"m.pbit: header has no 'beta'"):
        pbitsim.load(tmp_path / "m.pbit")
    one_line_error(run("info", tmp_path / "m.pbit"), 1, "header has no 'beta'")


# -- couplings: silently accepted wrong input ----------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: pbitsim.Couplings.from_dense(1j * np.ones((3, 3)) - 1j * np.eye(3)), "complex"),
        (lambda: pbitsim.Couplings.from_dense(np.array([[0, 1], [1, 0]]) + 0j), "complex"),
        (lambda: pbitsim.Couplings.from_edges(2, [(0, 1, 1j)]), "complex"),
        (lambda: pbitsim.Couplings.from_dense(np.zeros((2, 2)), h=[1j, 0]), "h is complex"),
        (lambda: pbitsim.Couplings.from_dense([["0", "1"], ["1", "0"]]), "real numbers"),
        (lambda: pbitsim.Couplings.from_edges(3, [(0, 1.5, 1.0)]), "not an integer"),
        (lambda: pbitsim.Couplings.from_edges(3, [("a", 1, 1.0)]), "not an integer"),
        (lambda: pbitsim.Couplings.from_edges(3, [(0, 1, "x")]), "not a number"),
    ],
)
def test_complex_or_non_numeric_couplings_are_refused(build, message):
    """Was: a complex J became a model with no edges (numpy drops the imaginary part)."""
    with pytest.raises(CouplingsError, match=message):
        build()


# -- samples files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spins", "message"),
    [
        (np.ones((2, 5, 6)), "spins must be int8 \\+1/-1, not float64"),
        (np.int8(1), r"shape \(replicas, draws, n\), not \(\)"),
        (np.ones((10, 6), np.int8), r"shape \(replicas, draws, n\), not \(10, 6\)"),
        (np.zeros((2, 5, 6), np.int8), r"must be \+1/-1, found 0 at \[0, 0, 0\]"),
        (np.full((2, 5, 6), 2, np.int8), r"must be \+1/-1, found 2"),
    ],
    ids=["float64", "shapeless", "2-d", "zeros", "twos"],
)
def test_bad_samples_are_refused(files, tmp_path, spins, message):
    """Was: a traceback (float64, shapeless), or tau = nan and exit 0 (zeros, spins of 2)."""
    path = copy_run(files, tmp_path, spins)
    with pytest.raises(SamplesFileError, match=message):
        pbitsim.load_samples(path)
    one_line_error(run("diagnose", path), 1, message)


def test_truncated_samples_file(files, tmp_path):
    """Was: 'mmap length is greater than file size'."""
    path = copy_run(files, tmp_path, np.ones((4, 400, 6), np.int8))
    raw = (tmp_path / "bad.npy").read_bytes()
    (tmp_path / "bad.npy").write_bytes(raw[: len(raw) // 2])
    one_line_error(run("diagnose", path), 1, r"bad.npy: not a readable .npy array .*truncated")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"bad.json: not valid JSON"),
        ("[1, 2]", r"bad.json: metadata must be a JSON object"),
        ('{"shape": [4, 400, 6]}', r"bad.json: metadata has no 'fingerprint'"),
        ('{"format_version": 99}', r"bad.json: samples format version 99 is newer"),
    ],
)
def test_bad_samples_metadata_names_the_file(files, tmp_path, text, message):
    """Was: JSON errors that did not name the file."""
    path = copy_run(files, tmp_path, np.ones((4, 400, 6), np.int8))
    (tmp_path / "bad.json").write_text(text)
    one_line_error(run("diagnose", path), 1, message)


def test_samples_without_metadata(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((1, 5, 3), np.int8))
    one_line_error(run("diagnose", tmp_path / "x.npy"), 1, r"x.json does not exist")


# -- argument values: exit 2, checked before the work ---------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--sweeps", 0], r"'--sweeps': 0 is not in the range x>=1"),
        (["demo", "--sweeps", 3], r"--sweeps: 3 is fewer than one draw every --thin 4"),
        (["demo", "--replicas", 1], r"'--replicas': 1 is not in the range x>=2"),
        (["demo", "--thin", 0], r"'--thin': 0 is not in the range x>=1"),
        (["demo", "--seed", -1], r"'--seed': -1 is not in the range x>=0"),
        (["demo", "--out", "no/such/folder/d.png"], r"--out: the folder no/such/folder"),
        (["demo", "--out", "demo.xyz"], r"--out: cannot write a xyz image"),
        (["train", "--lr", -1], r"'--lr': '-1' must be a finite number > 0"),
        (["train", "--lr", "nan"], r"'--lr': 'nan' must be a finite number > 0"),
        (["train", "--lr-final", 0], r"'--lr-final': '0' must be a finite number > 0"),
        (["train", "--epochs", 0], r"'--epochs': 0 is not in the range x>=1"),
        (["train", "--batch-size", 0], r"'--batch-size': 0 is not in the range"),
        (["train", "--chains", 0], r"'--chains': 0 is not in the range x>=1"),
        (["train", "-k", 0], r"'-k' / '--steps': 0 is not in the range x>=1"),
        (["train", "--hidden", 0], r"'--hidden': 0 is not in the range x>=1"),
        (["train", "--seed", -3], r"'--seed': -3 is not in the range x>=0"),
        (["train", "--data", "digits:12"], r"--data: no digits of classes"),
        (["train", "--data", "cifar"], r"--data: 'cifar': use 'digits'"),
        (["train", "--sampler", "quantum"], r"--sampler: unknown sampler 'quantum'"),
        (["sample", "ring:5", "--sweeps", 0], r"'--sweeps': 0 is not in the range"),
        (["sample", "ring:5", "--sweeps", 5, "--replicas", 0], r"'--replicas': 0 is not in"),
        (["sample", "ring:5", "--sweeps", 5, "--burn-in", -1], r"'--burn-in': -1 is not in"),
        (["sample", "ring:5", "--sweeps", 5, "--thin", 2], r"--sweeps: 5 is not a multiple"),
        (["sample", "ring:5", "--sweeps", 5, "--beta", 0], r"'--beta': '0' must be a finite"),
        (["sample", "ring:5", "--sweeps", 5, "--beta", "inf"], r"'--beta': 'inf' must be"),
        (["sample", "ring:5", "--sweeps", 5, "--seed", -1], r"'--seed': -1 is not in"),
        (["sample", "ring:5", "--sweeps", 5, "--swap-every", 0], r"'--swap-every': 0 is not"),
        (["sample", "ring:5", "--sweeps", 5, "--betas", "0.5,-1"], r"--betas: .*finite and > 0"),
        (["sample", "ring:5", "--sweeps", 5, "--anneal", "0.5"], r"--anneal: '0.5' is not START"),
        (["sample", "ring:5", "--sweeps", 5, "--method", "gibbs"], r"--method: unknown sampling"),
        (["sample", "ring:5", "--sweeps", 5, "--out", "no/such/run"], r"--out: the folder no/such"),
        (["sample", "ring:5", "--sweeps", 5, "--method", "async", "--betas", "1,2"], r"has no "),
        (["sample", "ring:2", "--sweeps", 5], r"MODEL: a ring needs n >= 3"),
        (["info", "lattice:4x"], r"MODEL: bad size"),
        (["info", "sk:100000000"], r"MODEL: 'sk:100000000': 100000000 spins need about"),
        (["diagnose", "x", "--batch", 0], r"'--batch': 0 is not in the range x>=1"),
        (["diagnose", "x", "--rung", -1], r"'--rung': -1 is not in the range x>=0"),
        (["diagnose", "x", "--out", "no/such/r.png"], r"--out: the folder no/such"),
        (["diagnose", "x", "--model", "torus:4"], r"--model: unknown model spec 'torus:4'"),
    ],
)
def test_bad_argument_values(args, message):
    """Was: demo and train checked none of their arguments; diagnose --batch 0 raised
    ZeroDivisionError; train --lr -1 exited 0. Options are checked before any file is read
    (diagnose's SAMPLES 'x' does not exist)."""
    one_line_error(run(*args), 2, message)


def test_model_that_does_not_fit_the_hardware_numbers():
    """Bad data (not a bad argument): exit 1, the offending weight named."""
    res = run("sample", "ferromagnet:4,J=20", "--sweeps", 5, "--method", "hardware")
    one_line_error(res, 1, r"J\[0,1\] = 20 needs code .* outside the 8-bit s3.4 range")


def test_arguments_that_depend_on_the_samples(files):
    one_line_error(run("diagnose", files / "run", "--batch", 401), 2, r"--batch: 401 is more")
    one_line_error(run("diagnose", files / "run", "--rung", 1), 2, r"--rung: applies to parallel")
    one_line_error(run("diagnose", files / "run", "--model", "ring:5"), 2, r"model has 5 spins")


@pytest.mark.parametrize("command", ["sample", "demo"])
def test_out_is_checked_before_the_work(monkeypatch, tmp_path, command):
    """Was: --out into a missing folder failed only after the work was done."""

    def no_work(*args, **kwargs):
        raise AssertionError("sampled before checking --out")

    monkeypatch.setattr(pbitsim, "sample", no_work)
    out = tmp_path / "missing" / ("run" if command == "sample" else "demo.png")
    args = ["sample", "ring:5", "--sweeps", 5] if command == "sample" else ["demo"]
    one_line_error(run(*args, "--out", out), 2, "--out: the folder .*missing does not exist")


def test_train_out_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    one_line_error(run("train", "--out", tmp_path / "f"), 2, "'--out': .* is a file")


def test_unreadable_training_data(tmp_path):
    (tmp_path / "img.idx").write_bytes(b"\x00\x00\x08\x03\x00")  # header cut short
    one_line_error(run("train", "--data", f"idx:{tmp_path / 'img.idx'}"), 1, "img.idx")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replicas", 10**9], r"chain state: .*lower replicas \(--replicas\)"),
        (["--sweeps", 10**10], r"of samples .*stream the draws to disk with out= \(--out\)"),
    ],
)
def test_run_too_large_for_memory_is_refused_before_allocating(args, message):
    """Was: 'Unable to allocate 179 GiB' after compiling. Now the size, what is available and
    the flag that lowers it, before any allocation (these runs would need hundreds of GiB)."""
    res = run("sample", "glass:12", "--sweeps", 10, *args)
    one_line_error(res, 2, message)
    assert re.search(r"\d+(\.\d+)? [TG]iB", res.output)


def test_memory_check_in_the_api(monkeypatch, glass, tmp_path):
    from pbitsim import sampling

    monkeypatch.setattr(sampling, "available_memory", lambda: 1 << 20)  # 1 MiB
    with pytest.raises(sampling.RunTooLargeError, match="stream the draws to disk") as err:
        pbitsim.sample(glass, 20_000, replicas=4)
    assert err.value.where == "memory" and err.value.needed > err.value.available
    monkeypatch.setattr(sampling, "available_memory", lambda: 1 << 30)
    s = pbitsim.sample(glass, 20_000, replicas=4, seed=1, out=tmp_path / "ok")  # fits on disk
    assert s.draws == 20_000


# -- training: divergence -----------------------------------------------------------------------


def test_hardware_training_that_diverges_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    """Was: at --lr 2 on digits the hardware sampler died with an overflow traceback and saved
    nothing (on this 6x3 model lr 5 leaves the s3.4 range in epoch 2)."""
    from pbitsim.learn import RBM, TrainConfig, TrainingDiverged, load_checkpoint, train

    data = np.where(np.random.default_rng(0).random((60, 6)) < 0.7, 1, -1).astype(np.int8)
    model = RBM.init(6, 3, seed=0, data=data)
    start = model.W.copy()
    cfg = TrainConfig(
        epochs=3, batch_size=20, lr=5.0, lr_final=5.0, chains=4, k=1, measure_tau_steps=0
    )
    with pytest.raises(TrainingDiverged, match="no longer fit sampler 'hardware'") as err:
        train(model, data, "hardware", cfg, checkpoint_dir=tmp_path, progress=False)
    done = len(err.value.history)
    saved, _, history = load_checkpoint(tmp_path)
    assert len(history) == done and err.value.epoch == done + 1
    np.testing.assert_array_equal(saved.W, model.W)  # the model is back at the checkpoint
    assert np.abs(saved.W).max() < 8  # fits the s3.4 weights
    if done == 0:
        np.testing.assert_array_equal(saved.W, start)
    meta = json.loads((tmp_path / "history.json").read_text())
    assert "diverged" in meta["stopped"] and "lower the learning rate" in meta["stopped"]


def test_training_that_diverges_from_the_command_line(tmp_path):
    res = run(
        "train",
        "--data",
        "digits:0",
        "--hidden",
        2,
        "--epochs",
        2,
        "--chains",
        4,
        "-k",
        1,
        "--lr",
        1e6,
        "--out",
        tmp_path,
        "--no-progress",
    )
    one_line_error(res, 1, r"training diverged in epoch 1: .*max_weight .*--lr")
    assert (tmp_path / "model.npz").exists()  # the initial model: the last good state


@pytest.mark.parametrize(
    ("field", "value"),
    [("lr", -1.0), ("lr", float("nan")), ("epochs", 0), ("chains", 0), ("k", 0)],
)
def test_train_config_is_checked(field, value):
    from pbitsim.learn import TrainConfig

    with pytest.raises(ValueError, match=f"TrainConfig.{field} must be"):
        TrainConfig(**{field: value})


# -- the command line's own messages -------------------------------------------------------------


def test_small_model_rate_is_not_printed_as_zero():
    """Was: '0.000 spin updates/ns' for small models."""
    res = run("sample", "ring:3", "--sweeps", 2, "--seed", 1)
    assert res.exit_code == 0, res.output
    rate = re.search(r"([0-9.e+-]+) spin updates/ns", res.output)
    assert rate and float(rate.group(1)) > 0, res.output


def test_round_trips_agree_between_sample_and_diagnose(tmp_path):
    """Was: round-trip counts differed by one between sample and diagnose for the same run."""
    args = ["ferromagnet:6,beta=0.6", "--sweeps", 3000, "--replicas", 2, "--seed", 2]
    res = run("sample", *args, "--betas", "0.1,0.3,0.6", "--out", tmp_path / "pt")
    assert res.exit_code == 0, res.output
    per_chain = re.search(r"round trips \[(\d+), (\d+)\] per chain", res.output)
    total = int(per_chain.group(1)) + int(per_chain.group(2))
    assert total > 0
    diag = run("diagnose", tmp_path / "pt")
    assert diag.exit_code == 0, diag.output
    assert re.search(rf"round trips\D*{total}\b", diag.output), diag.output


def test_compilation_is_announced_and_timed_apart(monkeypatch):
    """The first run says it is compiling and reports compile time apart from sampling time.
    (A fresh Numba function stands in for a cold cache: compiling the real kernels takes ~30 s.)"""
    import numba

    real = pbitsim.sample

    def compiles_first(*args, **kwargs):
        numba.njit(lambda x: x + 1)(1)  # a new function: compiled now, as on a first run
        return real(*args, **kwargs)

    monkeypatch.setattr(pbitsim, "sample", compiles_first)
    res = CliRunner().invoke(main, ["sample", "ring:5", "--sweeps", "4"])
    assert res.exit_code == 0, res.output
    assert "compiling sampling kernels (first run only)" in res.stderr
    assert re.search(r"\(\+ [\d.]+ s compiling sampling kernels, first run only\)", res.stdout)
    monkeypatch.setattr(pbitsim, "sample", real)
    res = CliRunner().invoke(main, ["sample", "ring:5", "--sweeps", "4"])
    assert "compiling" not in res.output  # a warm cache: nothing compiled, nothing said


def test_benchmark_skips_missing_peers(monkeypatch):
    """Was: bench_throughput.py --quick crashed without the [bench] extra."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / "bench_throughput.py"
    spec = importlib.util.spec_from_file_location("bench_throughput", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    notes = bench.missing_peers()
    assert set(notes) == {"neal", "thrml"}
    assert all(".[bench]" in note and note.startswith("skipped") for note in notes.values())
    assert bench.ratio(bench.Rate(1e9, 1.0, 1.0, 1.0), None) is None
