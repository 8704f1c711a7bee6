"""Property-based fuzz of ``pbitsim.load`` with the checksum recomputed, as a third-party writer
could produce: every file either loads or fails with pbitsim's own :class:`CouplingFileError`,
within 1 GiB of address space and 2 s.

Design. Starting a Python process per example (importing numpy and pbitsim: ~0.3 s) would cost
10 minutes for 2,000 examples on two cores. Instead one lean worker process imports
``pbitsim.fileformat`` once, caps its own address space at 1 GiB (``RLIMIT_AS``, inherited by its
children), and then, for every file it is sent, forks a child that arms a 2 s alarm and decodes
the file. The child reports the outcome in one line and exits; the alarm's default action kills a
child that runs too long and the address-space cap turns any runaway allocation into a
``MemoryError``, which is not a pbitsim error. So each example still runs in its own process with
its own limits, but costs a fork (a few ms) instead of an interpreter start. Hypothesis runs in
the test process and sends the files over a pipe.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pbitsim import FixedPointSpec, models
from pbitsim.fileformat import encode

LIMIT_BYTES = 1 << 30
LIMIT_SECONDS = 2

WORKER = r"""
import os, resource, signal, struct, sys, traceback
from pbitsim.fileformat import CouplingFileError, decode

limit = int(sys.argv[1]); seconds = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
inp, out = sys.stdin.buffer, sys.stdout
while True:
    head = inp.read(4)
    if len(head) < 4:
        break
    blob = inp.read(struct.unpack("<I", head)[0])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own process, the parent's limits, a 2 s alarm
        os.close(r)
        signal.alarm(seconds)
        try:
            decode(blob, "fuzz.pbit")
            msg = "ok"
        except CouplingFileError as e:
            text = str(e)
            msg = "own " + str(len(text)) if text.startswith("fuzz.pbit") else "unnamed " + text
        except BaseException as e:
            msg = "foreign " + type(e).__name__ + ": " + str(e)[:300]
        os.write(w, msg.encode()[:2000])
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        msg = "killed by signal " + str(os.WTERMSIG(status))
    else:
        msg = b"".join(chunks).decode() or "no answer"
    out.write(msg.replace("\n", " ") + "\n")
    out.flush()
"""


@pytest.fixture(scope="module")
def worker():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(LIMIT_BYTES), str(LIMIT_SECONDS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )

    def decode_in_child(blob: bytes) -> str:
        proc.stdin.write(struct.pack("<I", len(blob)) + blob)
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line, "the fuzz worker died"
        return line.decode().strip()

    yield decode_in_child
    proc.stdin.close()
    proc.wait(timeout=10)


def seal(body: bytes) -> bytes:
    """What a third-party writer does: append the SHA-256 of everything before it."""
    return body + hashlib.sha256(body).digest()


def assemble(header, arrays: bytes, version: int = 1, hlen: int | None = None) -> bytes:
    hb = header if isinstance(header, bytes) else json.dumps(header).encode()
    prefix = struct.pack("<8sHHI", b"PBITSIM\0", version, 0, len(hb) if hlen is None else hlen)
    return seal(prefix + hb + arrays)


def parts(c) -> tuple[dict, bytes]:
    """(header, array bytes) of a valid file of ``c``."""
    blob = encode(c)[:-32]
    hlen = struct.unpack_from("<I", blob, 12)[0]
    return json.loads(blob[16 : 16 + hlen]), blob[16 + hlen :]


VALID = [
    models.rbm(3, 2, seed=1),
    models.spin_glass(5, seed=2, field=0.3),
    models.ring(4).replace(fixed_point=FixedPointSpec.published()),
]

# values a header field could hold in a hand-written file
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, 3, 5, -1, 2**31, 2**32, 2**63, 10**6]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["n", "n_edges", "beta", "names", "fixed_point", "fingerprint", "topology_fingerprint"]


@st.composite
def header_edits(draw):
    """A valid file whose header fields are replaced, removed or added at random."""
    header, arrays = parts(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(FIELDS + ["extra"]))
        if draw(st.booleans()) and key in header:
            del header[key]
        else:
            header[key] = draw(json_values)
    return assemble(header, arrays)


@st.composite
def array_edits(draw):
    """A valid header over arrays whose words (colours, edge indices, weights, fields) are
    overwritten with hostile values, or cut, or extended."""
    header, arrays = parts(draw(st.sampled_from(VALID)))
    a = bytearray(arrays)
    for _ in range(draw(st.integers(1, 4))):
        if len(a) < 8:
            break
        at = draw(st.integers(0, len(a) - 4))
        word = draw(
            st.one_of(
                st.sampled_from([2**31 - 1, 2**32 - 1, 10**6, 2**31, 0, 1, 3]).map(
                    lambda x: struct.pack("<I", x)
                ),
                st.integers(-(2**31), 2**31 - 1).map(lambda x: struct.pack("<i", x)),
                st.sampled_from([float("nan"), float("inf"), -0.0, 1e308]).map(
                    lambda x: struct.pack("<d", x)[4:]
                ),
            )
        )
        a[at : at + 4] = word
    cut = draw(st.sampled_from([0, 0, 0, -1, -4, -8, 1, 8]))
    if cut < 0:
        a = a[:cut]
    elif cut > 0:
        a += bytes(cut)
    return assemble(header, bytes(a))


@st.composite
def built_files(draw):
    """Headers and arrays made up from scratch, sizes consistent with the header or not."""
    n = draw(st.sampled_from([0, 1, 2, 3, 4, 7, -1, 2**31, 10**6]))
    m = draw(st.sampled_from([0, 1, 2, 3, -1, 2**31]))
    header = {
        "n": n,
        "n_edges": m,
        "beta": draw(st.one_of(st.floats(), st.integers(-3, 3), st.none(), st.text(max_size=3))),
        "names": draw(st.one_of(st.none(), st.lists(st.text(max_size=3), max_size=5))),
        "fixed_point": draw(st.one_of(st.none(), json_values)),
        "fingerprint": "0" * 64,
        "topology_fingerprint": "0" * 64,
        "values_fingerprint": "0" * 64,
    }
    size = 12 * max(n, 0) + 16 * max(m, 0)
    size = size if size < 4096 else draw(st.integers(0, 256))
    arrays = draw(st.binary(min_size=size, max_size=size))
    return assemble(header, arrays)


@st.composite
def raw_edits(draw):
    """Any bytes of a valid file flipped, then resealed (the prefix included)."""
    blob = bytearray(encode(draw(st.sampled_from(VALID)))[:-32])
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(blob) - 1))
        blob[at] = draw(st.integers(0, 255))
    return seal(bytes(blob))


def huge_colour(colour: int) -> bytes:
    c = VALID[0]
    header, arrays = parts(c)
    a = bytearray(arrays)
    struct.pack_into("<i", a, 8 * c.n, colour)  # spin 0's colour
    return assemble(header, bytes(a))


def deep_json() -> bytes:
    header, arrays = parts(VALID[0])
    return assemble(b"[" * 100_000 + b"]" * 100_000, arrays)


def missing_beta() -> bytes:
    header, arrays = parts(VALID[1])
    del header["beta"]
    return assemble(header, arrays)


def long_header_length() -> bytes:
    header, arrays = parts(VALID[0])
    return assemble(header, arrays, hlen=2**32 - 1)


def negative_n() -> bytes:
    header, arrays = parts(VALID[0])
    header["n"], header["n_edges"] = -1, (len(arrays) + 12) // 16
    return assemble(header, arrays)


@settings(
    max_examples=2000,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.one_of(header_edits(), array_edits(), built_files(), raw_edits()))
@example(huge_colour(2**31 - 1))
@example(huge_colour(10**6))
@example(deep_json())
@example(missing_beta())
@example(long_header_length())
@example(negative_n())
def test_load_fails_only_with_pbitsims_errors_in_bounded_memory(worker, blob):
    outcome = worker(blob)
    assert outcome == "ok" or outcome.startswith("own "), outcome
    if outcome.startswith("own "):
        assert int(outcome.split()[1]) < 1000, "the message should be one readable line"


def test_the_harness_can_fail(worker):
    """Valid files load through the harness, a pbitsim error is recognised, and the address-space
    cap is real: an allocation beyond it fails in a process under the same limit."""
    for c in VALID:
        assert worker(encode(c)) == "ok"
    assert worker(b"not a file").startswith("own ")
    cap = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({LIMIT_BYTES},) * 2)"
    res = subprocess.run(
        [sys.executable, "-c", f"{cap}; import numpy as np; np.ones(2**31, np.int8)"],
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0 and "MemoryError" in res.stderr
