import gzip
import struct

import numpy as np
import pytest

from pbitsim.datasets import binarize, digits, load_mnist_idx, read_idx


def write_idx(path, array, dtype_code=0x08, compress=False):
    header = bytes([0, 0, dtype_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(">u1").tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def test_digits_are_binary_spins():
    x, y = digits()
    assert x.shape == (1797, 64) and x.dtype == np.int8
    assert set(np.unique(x)) == {-1, 1}
    assert set(np.unique(y)) == set(range(10))
    x01, y01 = digits(classes=(0, 1))
    assert set(np.unique(y01)) == {0, 1} and len(x01) < len(x)


def test_binarize_threshold():
    np.testing.assert_array_equal(binarize([0, 5, 10]), [-1, 1, 1])
    with pytest.raises(ValueError, match="all zero"):
        binarize([0, 0])


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = np.arange(5, dtype=np.uint8)
    write_idx(tmp_path / "img", images, compress=compress)
    write_idx(tmp_path / "lab", labels, compress=compress)
    np.testing.assert_array_equal(read_idx(tmp_path / "img"), images)
    x, y = load_mnist_idx(tmp_path / "img", tmp_path / "lab")
    assert x.shape == (5, 12)
    np.testing.assert_array_equal(x, binarize(images.reshape(5, -1)))
    np.testing.assert_array_equal(y, labels)


def test_idx_errors(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(tmp_path / "bad")
    images = np.full((5, 4, 3), 200, np.uint8)
    write_idx(tmp_path / "img", images)
    raw = (tmp_path / "img").read_bytes()
    (tmp_path / "cut").write_bytes(raw[:-7])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "cut")
    write_idx(tmp_path / "lab", np.arange(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="3 labels for 5 images"):
        load_mnist_idx(tmp_path / "img", tmp_path / "lab")
