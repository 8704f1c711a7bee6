"""The .pbit file: versioning, corruption, and readability without pbitsim."""

import hashlib
import json
import struct

import numpy as np
import pytest

import pbitsim
from pbitsim import CouplingFileError, FixedPointSpec, models
from pbitsim.fileformat import decode, encode


def reseal(body: bytes) -> bytes:
    """Recompute the trailing checksum, as a deliberate writer of a modified file would."""
    return body + hashlib.sha256(body).digest()


@pytest.fixture
def model():
    c = models.rbm(4, 3, seed=1, field=0.3, beta=1.5)
    return c.replace(fixed_point=FixedPointSpec(weight_bits=10, frac_bits=5))


def test_round_trip_keeps_everything(tmp_path, model):
    path = tmp_path / "m.pbit"
    model.save(path)
    back = pbitsim.load(path)
    assert back == model
    assert back.names == model.names
    assert back.fixed_point == model.fixed_point
    np.testing.assert_array_equal(back.coloring, model.coloring)


def test_read_without_pbitsim(tmp_path, model):
    """Decode with struct/json/numpy only, following docs/coupling-format.md."""
    path = tmp_path / "m.pbit"
    model.save(path)
    blob = path.read_bytes()
    magic, version, reserved, hlen = struct.unpack_from("<8sHHI", blob, 0)
    assert (magic, version, reserved) == (b"PBITSIM\0", 1, 0)
    assert hashlib.sha256(blob[:-32]).digest() == blob[-32:]
    header = json.loads(blob[16 : 16 + hlen])
    n, m = header["n"], header["n_edges"]
    off = 16 + hlen
    h = np.frombuffer(blob, "<f8", n, off)
    off += 8 * n
    coloring = np.frombuffer(blob, "<i4", n, off)
    off += 4 * n
    ei = np.frombuffer(blob, "<u4", m, off)
    ej = np.frombuffer(blob, "<u4", m, off + 4 * m)
    ew = np.frombuffer(blob, "<f8", m, off + 8 * m)
    assert off + 16 * m == len(blob) - 32
    J = np.zeros((n, n))
    J[ei, ej] = ew
    J += J.T
    J_ref, h_ref = model.to_dense()
    np.testing.assert_array_equal(J, J_ref)
    np.testing.assert_array_equal(h, h_ref)
    np.testing.assert_array_equal(coloring, model.coloring)
    assert header["beta"] == model.beta
    assert header["fingerprint"] == model.fingerprint


def test_corrupted_byte_is_detected(model):
    blob = bytearray(encode(model))
    blob[len(blob) // 2] ^= 0x01
    with pytest.raises(CouplingFileError, match="checksum"):
        decode(bytes(blob))


def test_truncated_file_is_detected(model):
    with pytest.raises(CouplingFileError, match="checksum|too short"):
        decode(encode(model)[:-5])
    with pytest.raises(CouplingFileError, match="too short"):
        decode(b"PBIT")


def test_not_a_pbit_file(tmp_path):
    p = tmp_path / "x.pbit"
    p.write_bytes(b"hello world, this is not a coupling file at all....")
    with pytest.raises(CouplingFileError, match="magic"):
        pbitsim.load(p)


def test_future_version_is_refused(model):
    blob = encode(model)[:-32]
    future = blob[:8] + struct.pack("<H", 2) + blob[10:]
    with pytest.raises(CouplingFileError, match="newer"):
        decode(reseal(future))


def test_altered_values_with_resealed_checksum_are_detected(model):
    """Editing a weight and fixing the checksum still fails: the stored fingerprint disagrees."""
    blob = bytearray(encode(model)[:-32])
    struct.pack_into("<d", blob, len(blob) - 8, 123.0)  # the last edge weight
    with pytest.raises(CouplingFileError, match="fingerprint"):
        decode(reseal(bytes(blob)))


def test_bad_header_and_sizes(model):
    blob = encode(model)[:-32]
    hlen = struct.unpack_from("<I", blob, 12)[0]
    header = json.loads(blob[16 : 16 + hlen])
    header["n_edges"] += 1
    hb = json.dumps(header).encode()
    wrong = blob[:12] + struct.pack("<I", len(hb)) + hb + blob[16 + hlen :]
    with pytest.raises(CouplingFileError, match="body has"):
        decode(reseal(wrong))
    garbage = blob[:16] + b"{" * hlen + blob[16 + hlen :]
    with pytest.raises(CouplingFileError, match="header"):
        decode(reseal(garbage))


def test_invalid_colouring_in_file_is_rejected(model):
    blob = bytearray(encode(model)[:-32])
    hlen = struct.unpack_from("<I", blob, 12)[0]
    off = 16 + hlen + 8 * model.n
    struct.pack_into("<i", blob, off, 1)  # visible 0 gets the hidden colour
    with pytest.raises(pbitsim.CouplingsError, match="coloring"):
        decode(reseal(bytes(blob)))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pbitsim.load(tmp_path / "nope.pbit")


def _edit_header(model, edit) -> bytes:
    """The model's file with ``edit(header)`` applied to its header, resealed."""
    blob = encode(model)[:-32]
    hlen = struct.unpack_from("<I", blob, 12)[0]
    header = json.loads(blob[16 : 16 + hlen])
    edit(header)
    hb = json.dumps(header).encode()
    return reseal(blob[:12] + struct.pack("<I", len(hb)) + hb + blob[16 + hlen :])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda h: h.pop("beta"), r"header has no 'beta'"),
        (lambda h: h.update(beta=0), r"'beta' must be a finite number > 0, not 0"),
        (lambda h: h.update(beta="1"), r"'beta' must be a finite number > 0, not '1'"),
        (lambda h: h.update(beta=True), r"'beta' must be a finite number > 0, not True"),
        (lambda h: h.pop("n"), r"header has no 'n'"),
        (lambda h: h.update(n=7.0), r"'n' must be an integer >= 1, not 7.0"),
        (lambda h: h.update(n=True), r"'n' must be an integer >= 1, not True"),
        (lambda h: h.update(n=-1), r"'n' must be an integer >= 1, not -1"),
        (lambda h: h.update(n_edges=-2), r"'n_edges' must be an integer >= 0"),
        (lambda h: h.update(n=10**30), r"header says n=10+, .* but body has"),
        (lambda h: h.update(names="abcdefg"), r"'names' must be null or a list of strings"),
        (lambda h: h.update(names=[1] * 7), r"'names' must be null or a list of strings"),
        (lambda h: h.update(names=["a"] * 3), r"3 names for n=7 spins"),
        (lambda h: h.update(names=["a"] * 7), r"node names must be unique"),
        (lambda h: h.update(fixed_point=[1]), r"'fixed_point' must be null or an object"),
        (lambda h: h.update(fixed_point={"bits": 3}), r"invalid 'fixed_point' .*unknown"),
        (lambda h: h.update(fixed_point={"weight_bits": 99}), r"invalid 'fixed_point'"),
        (lambda h: h.update(fingerprint=5), r"'fingerprint' must be a hex string, not 5"),
    ],
)
def test_every_header_field_is_checked(model, edit, message):
    """Each field is checked for type and range before anything is allocated, and the error
    names the file and the field."""
    with pytest.raises(CouplingFileError, match="^m.pbit: .*" + message) as err:
        decode(_edit_header(model, edit), "m.pbit")
    assert len(str(err.value)) < 300


def test_header_that_is_not_an_object_or_runs_past_the_end(model):
    blob = encode(model)[:-32]
    hlen = struct.unpack_from("<I", blob, 12)[0]
    as_list = b"[1, 2, 3]".ljust(hlen)
    with pytest.raises(CouplingFileError, match="header must be a JSON object, not list"):
        decode(reseal(blob[:16] + as_list + blob[16 + hlen :]), "m.pbit")
    too_long = blob[:12] + struct.pack("<I", 2**32 - 1) + blob[16:]
    with pytest.raises(CouplingFileError, match="header length 4294967295 runs past the end"):
        decode(reseal(too_long), "m.pbit")
    deep = blob[:12] + struct.pack("<I", 200_000) + b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(CouplingFileError, match="unreadable header"):
        decode(reseal(deep + blob[16 + hlen :]), "m.pbit")


def test_invalid_content_is_a_file_error_naming_the_file(model):
    """A model the constructor refuses (here a NaN weight) is reported as the file's fault."""
    blob = bytearray(encode(model)[:-32])
    struct.pack_into("<d", blob, len(blob) - 8, float("nan"))
    with pytest.raises(CouplingFileError, match="^m.pbit: J contains NaN"):
        decode(reseal(bytes(blob)), "m.pbit")


# -- reading large files: streamed, in bounded memory ---------------------------------------------


def _edge_file(n, i, j, w, h=None, coloring=None, beta=1.0) -> bytes:
    """A file with the edge list (i, j, w) in the order given (the header's fingerprints are
    those of the model it describes)."""
    c = pbitsim.Couplings.from_edges(n, list(zip(i, j, w)), h=h, beta=beta, coloring=coloring)
    blob = encode(c)[:-32]
    m = len(i)
    tail = (
        np.asarray(i, "<u4").tobytes()
        + np.asarray(j, "<u4").tobytes()
        + np.asarray(w, "<f8").tobytes()
    )
    return reseal(blob[: len(blob) - 16 * m] + tail), c


def test_load_reads_the_file_as_decode_does(tmp_path, model, monkeypatch):
    import pbitsim.fileformat as ff

    monkeypatch.setattr(ff, "_CHUNK", 3)  # the weights placed a few edges at a time
    big = models.spin_glass(30, p=0.3, seed=5, field=0.2)
    for c in (model, big):
        path = tmp_path / "m.pbit"
        c.save(path)
        assert path.read_bytes() == encode(c)
        loaded = pbitsim.load(path)
        assert loaded == c == decode(path.read_bytes())
        np.testing.assert_array_equal(loaded.data, c.data)
        np.testing.assert_array_equal(loaded.indices, c.indices)


def test_edges_out_of_order_still_load_and_repeats_are_refused():
    i, j, w = [2, 0, 1, 0], [3, 1, 2, 3], [0.5, -1.0, 2.0, 0.25]
    blob, c = _edge_file(4, i, j, w)
    assert decode(blob) == c
    blob, c = _edge_file(4, [0, 1, 0], [1, 2, 3], [1.0, 1.0, 1.0])
    body = bytearray(blob[:-32])
    struct.pack_into("<I", body, len(body) - 16 * 3 + 8, 0)  # edge (0, 3) becomes (0, 1) again
    struct.pack_into("<I", body, len(body) - 12 * 3 + 8, 1)
    with pytest.raises(CouplingFileError, match="listed twice"):
        decode(reseal(bytes(body)))


def test_corruption_is_reported_before_any_content_error(model):
    """An edge out of range in a file whose checksum fails: the checksum is what is reported."""
    blob = bytearray(encode(model))
    hlen = struct.unpack_from("<I", blob, 12)[0]
    struct.pack_into("<I", blob, 16 + hlen + 12 * model.n, 10**6)  # edge i of the first edge
    with pytest.raises(CouplingFileError, match="checksum"):
        decode(bytes(blob))
    with pytest.raises(CouplingFileError, match="0 <= i < j < n"):
        decode(reseal(bytes(blob[:-32])))


def test_load_peak_memory_is_within_twice_the_csr(tmp_path, monkeypatch):
    """The reader holds the model, the two edge-index arrays and a few counters of n, never a
    copy of the file or a sort key per edge (traced allocations; chunks scaled down with the
    model so that they stay small beside it, as they do for 10^6 spins)."""
    import tracemalloc

    import pbitsim.couplings as cm
    import pbitsim.fileformat as ff

    monkeypatch.setattr(ff, "_CHUNK", 1 << 10)
    monkeypatch.setattr(cm, "_CHUNK", 1 << 10)
    c = models.lattice_2d(120, 120, beta=0.4)
    path = tmp_path / "lattice.pbit"
    c.save(path)
    cm._Topology._recent.clear()
    tracemalloc.start()
    loaded = pbitsim.load(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert loaded == c
    csr = c.indptr.nbytes + c.indices.nbytes + c.data.nbytes
    assert peak <= 2 * csr, (peak, csr)
