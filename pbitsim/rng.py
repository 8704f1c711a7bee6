"""The per-p-bit pseudo-random generators of pbitsim's hardware, as software twins.

Every p-bit in hardware owns one generator; at every edge of its own clock the p-bit compares the
generator's current output with an activation-table entry and then the generator advances. This
module defines those generators bit for bit, in two forms that must agree (a test checks it):

* plain scalar functions on ``np.uint64`` (``xorshift64_next``, ``lfsr32_xnor_next`` and their
  ``*_output``, ``mix64``, ``splitmix64_next``, ``uniform53``). They import no Numba: the
  simulator compiles them (:mod:`pbitsim.sim.jit`, ``numba.njit``; later the GPU module with
  ``cuda.jit(device=True)``), so each rule is written once. Called from Python they also work on
  uint64 arrays, elementwise (scalar uint64 arithmetic would warn about the wrap-around that is
  intended here, so Python callers pass arrays);
* small pure-Python classes (:class:`Xorshift64`, :class:`Lfsr32Xnor`) working on Python ints, the
  obviously-correct reference and the twins of the gateware blocks of the same name.

Generators
----------
``"xorshift64"`` (pbitsim's default)
    Marsaglia's 64-bit xorshift with shifts (13, 7, 17)::

        x ^= x << 13;  x ^= x >> 7;  x ^= x << 17      (all mod 2**64)

    Output: the top ``rng_bits`` bits of the state, ``x >> (64 - rng_bits)``. Period 2**64 - 1 over
    the non-zero states; 0 is the stuck state and is never used as a seed.
``"lfsr32-xnor"`` (the published design)
    32-bit Fibonacci LFSR, XNOR feedback, taps 32, 22, 2, 1 (bits numbered 32..1, bit 32 the MSB
    = Python bit 31): ``fb = NOT(r32 ^ r22 ^ r2 ^ r1)``, ``r <- ((r << 1) | fb) mod 2**32``.
    Output: the register as unsigned (``rng_bits = 32``; with fewer bits, the top ``rng_bits``).
    All ones is the stuck state; zero is an ordinary state (followed by 1).

Why xorshift64 with splitmix64 seeding
--------------------------------------
Any generator that makes one number per clock from its own state is a walk around a fixed cycle of
states, so p-bits seeded differently run *shifted copies of one sequence*. With a 16- or 32-bit
state the cycle is short (65,535 or ~4.3e9 numbers): over a run of L draws, two of n p-bits
overlap (p-bit a reproduces p-bit b's numbers a fixed lag later, so their decisions are
correlated) with probability about n**2 L / period, which is near 1 for n = 1,000 and L = 1e6 on
a 32-bit generator and certain on a 16-bit one (``shared/toolchain.md``'s pitfall). With period
2**64 - 1 and seeds spread over the whole cycle by a hash, that probability is about
n**2 L / 2**64 ~ 5e-4 even for n = 1e3 p-bits and L = 1e10 draws each. splitmix64 (a bijective
64-bit mixer) turns (master seed, p-bit index) into a seed that is effectively a uniformly random
point of the cycle, so consecutive p-bits do not get nearby offsets. xorshift64 needs shifts and
XORs only (no multiplier, no carry chain): 64 flip-flops and 155 two-input XORs per p-bit, or
one 64-bit BRAM word per p-bit in a time-multiplexed engine. Like every F2-linear generator (the
LFSR included) it fails tests aimed at linearity (binary rank, linear complexity); a p-bit only
uses each number through one comparison with a table entry, for which uniformity and the absence of
cross-correlation between p-bits and between a p-bit's consecutive numbers are what matter
(``tests/test_rng.py`` checks them; the published LFSR fails the last one, see
``docs/hardware-model.md``).

Seeding (:func:`derive_seeds`)
------------------------------
Seed of p-bit i of replica r from master seed M: ``z = splitmix64(M, r * n + i)``, the
``(r*n + i)``-th output (counting from 0) of Vigna's splitmix64 generator started at state M:
``z = mix64(M + (r*n + i + 1) * 0x9E3779B97F4A7C15 mod 2**64)``. Replica 0 is what hardware loads.

* xorshift64: seed = z, and z = 0 (one index in 2**64) is replaced by 0x9E3779B97F4A7C15.
* lfsr32-xnor: seed = z >> 32, and the two values 0 and 0xFFFFFFFF are replaced by 0x00000001:
  all ones would lock the register, and 0 confuses an event-driven simulation of the published RTL.

Seeds of the second generator (:func:`derive_enable_seeds`)
-----------------------------------------------------------
The "async-random" schedule gives each p-bit a second, *enable* generator of the same kind; all
2n generators of a machine advance every cycle, so two of them with the same seed would run the
same numbers forever. splitmix64's counter is split into ranges that never meet: indices
[0, 2**63) give decision seeds (index r*n + i above), [2**63, 3*2**62) enable seeds
(:data:`ENABLE_INDEX` + r*n + i), [3*2**62, 2**64) other run-time values (:data:`AUX_INDEX`, e.g.
the default phases of "async-periodic"). ``mix64`` and the counter step are bijections, so the raw
64-bit values of different indices differ. The seed is then formed as for decision seeds (z, or
z >> 32 for lfsr32-xnor), and a candidate is *refused* if it is a forbidden value (0 for
xorshift64; 0 and 0xFFFFFFFF for lfsr32-xnor) or equals a decision seed of the same replica or an
enable seed already given to a lower p-bit of it; a refused candidate is replaced by
``mix64(z + 0x9E3779B97F4A7C15)`` (splitmix64 continued from state z), formed the same way, until
one is accepted. For xorshift64 this never happens in practice (it needs a 64-bit coincidence);
for lfsr32-xnor, whose seeds keep 32 bits, a machine of n p-bits meets one with probability about
2 n**2 / 2**32, and the rule resolves it the same way on every machine.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "RNG_KINDS",
    "XORSHIFT64",
    "LFSR32_XNOR",
    "rng_kind_code",
    "state_bits",
    "xorshift64_next",
    "xorshift64_output",
    "lfsr32_xnor_next",
    "lfsr32_xnor_output",
    "rng_stream",
    "mix64",
    "splitmix64",
    "splitmix64_next",
    "uniform53",
    "derive_seeds",
    "resolve_seeds",
    "ENABLE_INDEX",
    "AUX_INDEX",
    "splitmix64_block",
    "derive_enable_seeds",
    "resolve_enable_seeds",
    "check_seeds",
    "Xorshift64",
    "Lfsr32Xnor",
    "make_generator",
]

XORSHIFT64 = "xorshift64"
LFSR32_XNOR = "lfsr32-xnor"
#: Generator kinds, in the order of their integer codes (used inside Numba kernels).
RNG_KINDS = (XORSHIFT64, LFSR32_XNOR)

MASK32 = 0xFFFF_FFFF
MASK64 = 0xFFFF_FFFF_FFFF_FFFF
GOLDEN64 = 0x9E37_79B9_7F4A_7C15
_STATE_BITS = {XORSHIFT64: 64, LFSR32_XNOR: 32}
_STUCK = {XORSHIFT64: 0, LFSR32_XNOR: MASK32}


def rng_kind_code(kind: str) -> int:
    """Integer code of a generator kind (its index in :data:`RNG_KINDS`)."""
    if kind not in RNG_KINDS:
        raise ValueError(f"unknown random number generator {kind!r}; choose one of {RNG_KINDS}")
    return RNG_KINDS.index(kind)


def state_bits(kind: str) -> int:
    """Width in bits of a generator state of ``kind`` (64 or 32): a seed is that many bits, written
    to hardware as ``state_bits // 32`` words."""
    rng_kind_code(kind)
    return _STATE_BITS[kind]


# --------------------------------------------------------------------------------------------
# The generator steps as plain scalar functions (np.uint64 in, np.uint64 out), compiled by
# pbitsim.sim.jit. Every constant is a np.uint64: Numba would otherwise unify uint64 with int64
# literals into float64 and silently lose bits. No in-place operators, so that a Python caller's
# array is never modified.
# --------------------------------------------------------------------------------------------

_U1 = np.uint64(1)
_U7 = np.uint64(7)
_U11 = np.uint64(11)
_U13 = np.uint64(13)
_U17 = np.uint64(17)
_U32 = np.uint64(32)
_U64 = np.uint64(64)
_M32 = np.uint64(MASK32)
_GOLDEN = np.uint64(GOLDEN64)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def xorshift64_next(state):
    """Next xorshift64 (13, 7, 17) state."""
    x = np.uint64(state)
    x = x ^ (x << _U13)
    x = x ^ (x >> _U7)
    return x ^ (x << _U17)


def xorshift64_output(state, rng_bits):
    """Random number a p-bit compares: the top ``rng_bits`` (1..32) bits of the state."""
    return np.uint64(state) >> (_U64 - np.uint64(rng_bits))


def lfsr32_xnor_next(state):
    """Next state of the published 32-bit XNOR LFSR (taps 32, 22, 2, 1; shift left, fb -> bit 1)."""
    r = np.uint64(state) & _M32
    # Register bit k (1-based, as in the reference) is Python bit k - 1.
    x = (r >> np.uint64(31)) ^ (r >> np.uint64(21)) ^ (r >> _U1) ^ r
    fb = (x & _U1) ^ _U1  # XNOR = NOT(XOR)
    return ((r << _U1) | fb) & _M32


def lfsr32_xnor_output(state, rng_bits):
    """Random number a p-bit compares: the top ``rng_bits`` (1..32) bits of the 32-bit register."""
    return (np.uint64(state) & _M32) >> (_U32 - np.uint64(rng_bits))


def mix64(z):
    """splitmix64's output mixer (a bijection of 64-bit values)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def splitmix64_next(state):
    """One step of Vigna's splitmix64: (new state, output). For software-only random streams."""
    s = np.uint64(state) + _GOLDEN
    return s, mix64(s)


def uniform53(z):
    """A float64 uniform on [0, 1) from the top 53 bits of a 64-bit random number."""
    return np.float64(np.uint64(z) >> _U11) * (1.0 / 9007199254740992.0)


def rng_stream(kind: str, seeds, count: int, rng_bits: int) -> np.ndarray:
    """The first ``count`` outputs of each generator (output, then advance).

    ``seeds`` is one seed or a 1-D array of them. Returns uint64 (len(seeds), count), or (count,)
    for a scalar seed. Vectorised over the seeds with the same scalar rules the kernels compile.
    """
    code = rng_kind_code(kind)
    if not 1 <= rng_bits <= 32:
        raise ValueError(f"rng_bits must be in 1..32, not {rng_bits}")
    step, output = _STEPS[code]
    s = np.atleast_1d(np.asarray(seeds, dtype=np.uint64))
    out = np.empty((s.shape[0], int(count)), dtype=np.uint64)
    for t in range(int(count)):
        out[:, t] = output(s, rng_bits)
        s = step(s)
    return out[0] if np.ndim(seeds) == 0 else out


_STEPS = ((xorshift64_next, xorshift64_output), (lfsr32_xnor_next, lfsr32_xnor_output))


def splitmix64(master: int, index: int) -> int:
    """Output number ``index`` (from 0) of splitmix64 started at state ``master`` (Python ints)."""
    z = (int(master) + (int(index) + 1) * GOLDEN64) & MASK64
    return int(mix64(np.array([z], dtype=np.uint64))[0])


def derive_seeds(master: int, n: int, kind: str = XORSHIFT64, replicas: int | None = None):
    """Per-p-bit seeds from one master seed (see the module docstring for the exact rule).

    Parameters
    ----------
    master : int
        Master seed, 0 <= master < 2**64.
    n : int
        Number of p-bits.
    kind : {"xorshift64", "lfsr32-xnor"}
    replicas : int, optional
        When given, seeds for that many independent copies, shape (replicas, n); else shape (n,)
        (= replica 0).

    Returns
    -------
    np.ndarray of uint64
    """
    rng_kind_code(kind)
    master = int(master)
    if not 0 <= master <= MASK64:
        raise ValueError(f"master seed must be in 0..2**64-1, not {master}")
    r = 1 if replicas is None else int(replicas)
    idx = np.arange(r * int(n), dtype=np.uint64)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps mod 2**64 on purpose
        z = np.uint64(master) + (idx + np.uint64(1)) * np.uint64(GOLDEN64)
        z = mix64(z)
    if kind == XORSHIFT64:
        z[z == 0] = np.uint64(GOLDEN64)
    else:
        z >>= np.uint64(32)
        z[(z == 0) | (z == MASK32)] = np.uint64(1)
    return z.reshape(r, int(n)) if replicas is not None else z


def resolve_seeds(seed_or_seeds, n: int, kind: str, replicas: int | None = None) -> np.ndarray:
    """Per-p-bit seeds: an int is a master seed (:func:`derive_seeds`), an array is taken as given
    (shape (n,), or (replicas, n) when ``replicas`` is given; checked by :func:`check_seeds`).

    Returns uint64 of shape (n,) when ``replicas`` is None, else (replicas, n).
    """
    if np.ndim(seed_or_seeds) == 0:
        if isinstance(seed_or_seeds, bool) or not isinstance(seed_or_seeds, int | np.integer):
            raise TypeError(f"seed must be an int or an array of seeds, not {seed_or_seeds!r}")
        return derive_seeds(int(seed_or_seeds), n, kind, replicas)
    seeds = check_seeds(seed_or_seeds, kind)
    want = (n,) if replicas is None else (replicas, n)
    if replicas == 1 and seeds.shape == (n,):
        seeds = seeds[None, :]
    if seeds.shape != want:
        if replicas is not None and seeds.shape == (n,):
            raise ValueError(f"explicit seeds for {replicas} replicas must have shape {want}")
        raise ValueError(f"seeds must have shape {want}, not {seeds.shape}")
    return seeds


#: First splitmix64 counter index of the enable generators' seeds (see the module docstring).
ENABLE_INDEX = 1 << 63
#: First splitmix64 counter index of other derived run-time values (e.g. default phases).
AUX_INDEX = 3 << 62


def splitmix64_block(master: int, first: int, count: int) -> np.ndarray:
    """splitmix64 outputs ``first`` .. ``first + count - 1`` of master seed ``master``, uint64."""
    master = int(master)
    if not 0 <= master <= MASK64:
        raise ValueError(f"master seed must be in 0..2**64-1, not {master}")
    idx = np.arange(int(count), dtype=np.uint64) + np.uint64(int(first) + 1)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps mod 2**64 on purpose
        return mix64(np.uint64(master) + idx * np.uint64(GOLDEN64))


def _seed_from(z: np.ndarray, kind: str) -> np.ndarray:
    """The seed a raw 64-bit splitmix64 value gives (before any replacement)."""
    return z if kind == XORSHIFT64 else z >> np.uint64(32)


def _forbidden(seeds: np.ndarray, kind: str) -> np.ndarray:
    if kind == XORSHIFT64:
        return seeds == 0
    return (seeds == 0) | (seeds == MASK32)


def derive_enable_seeds(master: int, decision_seeds, kind: str = XORSHIFT64) -> np.ndarray:
    """Seeds of the enable generators ("async-random"), none equal to a decision seed.

    Parameters
    ----------
    master : int
        Master seed.
    decision_seeds : array_like of uint64, shape (n,) or (replicas, n)
        The decision generators' seeds of the same machines (replica r = row r).
    kind : {"xorshift64", "lfsr32-xnor"}

    Returns
    -------
    np.ndarray of uint64, the shape of ``decision_seeds``
        Seed of p-bit i of replica r: from ``splitmix64(master, ENABLE_INDEX + r*n + i)``, with
        collisions resolved as the module docstring says.
    """
    rng_kind_code(kind)
    dec = np.asarray(decision_seeds, dtype=np.uint64)
    rows = np.atleast_2d(dec)
    r, n = rows.shape
    z = splitmix64_block(master, ENABLE_INDEX, r * n).reshape(r, n)
    seeds = _seed_from(z, kind)
    # Rows needing a look: a forbidden value, or two equal values among decision + enable seeds
    # (a decision-decision pair also flags a row; the slow path below ignores it).
    both = np.sort(np.concatenate([rows, seeds], axis=1), axis=1)
    suspect = _forbidden(seeds, kind).any(axis=1) | (both[:, 1:] == both[:, :-1]).any(axis=1)
    for k in np.flatnonzero(suspect):
        taken = {int(x) for x in rows[k]}
        for i in range(n):
            zi = z[k, i : i + 1]
            s = int(_seed_from(zi, kind)[0])
            while s in taken or bool(_forbidden(np.array([s], np.uint64), kind)[0]):
                with np.errstate(over="ignore"):
                    zi = mix64(zi + np.uint64(GOLDEN64))
                s = int(_seed_from(zi, kind)[0])
            taken.add(s)
            seeds[k, i] = s
    return seeds.reshape(dec.shape)


def resolve_enable_seeds(enable_or_master, decision_seeds, kind: str) -> np.ndarray:
    """Enable seeds: an int is a master seed (:func:`derive_enable_seeds`); an array is taken as
    given (the shape of ``decision_seeds``, checked by :func:`check_seeds`), and refused if one
    equals a decision seed or another enable seed of the same replica.
    """
    dec = np.asarray(decision_seeds, dtype=np.uint64)
    if np.ndim(enable_or_master) == 0:
        if isinstance(enable_or_master, bool) or not isinstance(enable_or_master, int | np.integer):
            raise TypeError(
                f"enable seeds must be a master seed or an array, not {enable_or_master!r}"
            )
        return derive_enable_seeds(int(enable_or_master), dec, kind)
    seeds = check_seeds(enable_or_master, kind)
    if seeds.shape != dec.shape:
        if seeds.ndim == 1 and dec.ndim == 2 and dec.shape[0] == 1 and seeds.shape == dec.shape[1:]:
            seeds = seeds[None, :]
        else:
            raise ValueError(f"enable seeds must have shape {dec.shape}, not {seeds.shape}")
    rows, erows = np.atleast_2d(dec), np.atleast_2d(seeds)
    for r in range(rows.shape[0]):
        seen = {int(x): f"the decision seed of p-bit {i}" for i, x in enumerate(rows[r])}
        for i, x in enumerate(erows[r].tolist()):
            if x in seen:
                raise ValueError(
                    f"enable seed of p-bit {i} (replica {r}) = {x:#x} equals {seen[x]}: the two "
                    f"generators would run the same numbers"
                )
            seen[x] = f"the enable seed of p-bit {i}"
    return seeds


def check_seeds(seeds, kind: str) -> np.ndarray:
    """Validate explicit seeds: integers in the state range, none in the stuck state.

    Returns them as uint64 (same shape). Raises ValueError naming the first bad p-bit.
    """
    rng_kind_code(kind)
    arr = np.asarray(seeds, dtype=object)
    flat = arr.ravel().tolist()
    bits = _STATE_BITS[kind]
    for k, s in enumerate(flat):
        if isinstance(s, bool) or not isinstance(s, int | np.integer):
            raise TypeError(f"seed {k} must be an integer, not {s!r}")
        s = int(s)
        if not 0 <= s < (1 << bits):
            raise ValueError(f"seed {k} = {s:#x} is outside the {bits}-bit state of {kind}")
        if s == _STUCK[kind]:
            raise ValueError(
                f"seed {k} = {s:#x} is the stuck state of {kind}: that p-bit's random number "
                f"would never change"
            )
    return np.array([int(s) for s in flat], dtype=np.uint64).reshape(arr.shape)


# --------------------------------------------------------------------------------------------
# Pure-Python twins (Python ints): the reference the Numba versions and the RTL are checked
# against. Names match the gateware blocks.
# --------------------------------------------------------------------------------------------


class Xorshift64:
    """xorshift64 (13, 7, 17) register, software twin of the gateware block of the same name.

    Parameters
    ----------
    seed : int
        Initial state (the register before the first edge), 0 <= seed < 2**64. Zero is the stuck
        state; it is allowed here (a register can hold it) but never produced by
        :func:`derive_seeds`.

    Attributes
    ----------
    state : int
    """

    kind = XORSHIFT64
    state_bits = 64

    def __init__(self, seed: int) -> None:
        seed = int(seed)
        if not 0 <= seed <= MASK64:
            raise ValueError(f"xorshift64 seed must be in 0..2**64-1, not {seed}")
        self.state = seed

    def output(self, rng_bits: int = 16) -> int:
        """The number compared at the next edge: the top ``rng_bits`` bits of the state."""
        return self.state >> (64 - rng_bits)

    def step(self) -> None:
        """One clock edge."""
        x = self.state
        x ^= (x << 13) & MASK64
        x ^= x >> 7
        x ^= (x << 17) & MASK64
        self.state = x

    def take(self, count: int, rng_bits: int = 16) -> list[int]:
        """Outputs at the next ``count`` edges (output as it stands before each edge)."""
        out = []
        for _ in range(count):
            out.append(self.output(rng_bits))
            self.step()
        return out


class Lfsr32Xnor:
    """The published 32-bit Fibonacci XNOR LFSR, software twin of the gateware block.

    Bits are numbered 32..1 (bit 32 = MSB). Each edge: ``fb = NOT(r32 ^ r22 ^ r2 ^ r1)``,
    ``r <- {r31..r1, fb}``. All ones is the stuck state (allowed here, refused as a seed by the
    cycle model); zero is an ordinary state.

    Attributes
    ----------
    state : int
    """

    kind = LFSR32_XNOR
    state_bits = 32

    def __init__(self, seed: int) -> None:
        seed = int(seed)
        if not 0 <= seed <= MASK32:
            raise ValueError(f"lfsr32-xnor seed must be in 0..2**32-1, not {seed}")
        self.state = seed

    def bit(self, k: int) -> int:
        """Register bit k, 1-based as in the reference (bit 32 = MSB)."""
        return (self.state >> (k - 1)) & 1

    def output(self, rng_bits: int = 32) -> int:
        return self.state >> (32 - rng_bits)

    def step(self) -> None:
        fb = 1 - (self.bit(32) ^ self.bit(22) ^ self.bit(2) ^ self.bit(1))
        self.state = ((self.state << 1) & MASK32) | fb

    def take(self, count: int, rng_bits: int = 32) -> list[int]:
        out = []
        for _ in range(count):
            out.append(self.output(rng_bits))
            self.step()
        return out


def make_generator(kind: str, seed: int) -> Xorshift64 | Lfsr32Xnor:
    """The pure-Python generator of ``kind`` started at ``seed``."""
    rng_kind_code(kind)
    return Xorshift64(seed) if kind == XORSHIFT64 else Lfsr32Xnor(seed)
