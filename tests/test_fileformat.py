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
