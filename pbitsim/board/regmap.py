"""The register map of a p-bit array: addresses, identity words with their decoders, load images.

A board's array is built for one topology and one :class:`~pbitsim.board.design.HardwareDesign`;
everything else (J codes, biases, the activation table, generator seeds, spins) is written at run
time through a 32-bit register port. This module is the one definition of that port, read by the
gateware (``hdl/``), the board's command engine (:mod:`pbitsim.board.session`), the
emulator and the host. ``docs/hardware.md`` has the table.

* :class:`AddressMap` — ``address = region << index_bits | index``;
* the identity words (ID, VERSION, TOPOLOGY, SHAPE, COLORS, FORMAT, DESIGN) — encoders and
  decoders, so a host rebuilds the whole design from what a board reports (:class:`BoardWords`);
* :func:`load_writes` — the writes that load a model — and its inverse
  (:func:`read_load_writes`, through :class:`RegisterFile`, the board's storage as plain arrays);
* the run-time values of the un-coloured schedules: the ENABLE register ("async-random"), a
  second generator's seed words in region SEED, and PERIOD/PHASE per p-bit in region TIMER
  ("async-periodic");
* :func:`weight_writes` — only the J, bias and table words that changed between two models;
* :func:`region_digest` — the CRC-32 per region that LOAD-DIGEST reports.

Pure Python (numpy and the standard library).
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from pbitsim.board.design import (
    ENABLE_BITS,
    SCHEDULES,
    TIMER_BITS,
    HardwareDesign,
    run_time_values,
)
from pbitsim.fixedpoint import FixedPointSpec, activation_table
from pbitsim.rng import (
    RNG_KINDS,
    derive_enable_seeds,
    derive_seeds,
    resolve_enable_seeds,
    resolve_seeds,
    rng_kind_code,
    state_bits,
)

__all__ = [
    "MAGIC",
    "REGMAP_VERSION",
    "DATA_BITS",
    "MAX_PBITS",
    "MAX_SLOTS",
    "MAX_COLORS",
    "Region",
    "Register",
    "AddressError",
    "AddressMap",
    "BoardWords",
    "LoadImage",
    "RegisterFile",
    "topology_id",
    "shape_word",
    "decode_shape",
    "colors_word",
    "decode_colors",
    "format_word",
    "design_word",
    "decode_design",
    "status_word",
    "decode_status",
    "bias_of",
    "sum_width",
    "load_writes",
    "read_load_writes",
    "weight_writes",
    "region_digest",
    "region_addresses",
    "load_digests",
    "image_writes",
    "DIGEST_REGIONS",
    "IDENTITY",
    "TIMER_PERIOD",
    "TIMER_PHASE",
]

MAGIC = 0x50424954  # "PBIT"
#: Version of this register map (2: SHAPE widened, COLORS and DESIGN added, J/BIAS/TABLE readable).
REGMAP_VERSION = 2
REGION_BITS = 3
DATA_BITS = 32
_MASK = (1 << DATA_BITS) - 1

MAX_PBITS = (1 << 24) - 1  # SHAPE [23:0]
MAX_SLOTS = 255  # SHAPE [31:24]
MAX_COLORS = (1 << 16) - 1  # COLORS [15:0]
_MAX_LATENCY = 255  # DESIGN [11:4]
_MAX_WARMUP = 255  # DESIGN [19:12]
_MAX_DEGREE_FIELD = (1 << 11) - 1  # DESIGN [31:21]


class Region(enum.IntEnum):
    """Top ``REGION_BITS`` bits of a register-port address."""

    REG = 0
    BIAS = 1
    J = 2
    TABLE = 3
    SEED = 4
    SPIN = 5
    TIMER = 6  # "async-periodic" designs only: PERIOD (slot 0) and PHASE (slot 1) per p-bit


class Register(enum.IntEnum):
    """Registers of region ``REG`` (CONTROL is written; read, the same address is STATUS).
    ENABLE exists in "async-random" designs only (read and write)."""

    ID = 0
    VERSION = 1
    TOPOLOGY_LO = 2
    TOPOLOGY_HI = 3
    SHAPE = 4
    FORMAT = 5
    CONTROL = 6
    DESIGN = 7
    COLORS = 8
    ENABLE = 9


#: TIMER slots of a p-bit.
TIMER_PERIOD, TIMER_PHASE = 0, 1
_ENABLE_MASK = (1 << (ENABLE_BITS + 1)) - 1  # ENABLE holds 0..2**16 (p = 1) and more
_TIMER_MASK = (1 << TIMER_BITS) - 1


#: Registers whose value is fixed when the array is built (the board's identity).
IDENTITY = (
    Register.ID,
    Register.VERSION,
    Register.TOPOLOGY_LO,
    Register.TOPOLOGY_HI,
    Register.SHAPE,
    Register.FORMAT,
    Register.DESIGN,
    Register.COLORS,
)

#: Regions LOAD-DIGEST covers, in the order it reports them (SEED and SPIN are live state).
DIGEST_REGIONS = (Region.J, Region.BIAS, Region.TABLE)


class AddressError(ValueError):
    """An address the register port has nothing at (or not for this access)."""

    def __init__(self, address: int, why: str) -> None:
        super().__init__(f"address {address:#010x}: {why}")
        self.address = address


def topology_id(couplings) -> int:
    """First 64 bits of :attr:`Couplings.topology_fingerprint` (read back by a host)."""
    return int(couplings.topology_fingerprint[:16], 16)


def sum_width(spec: FixedPointSpec, degree: int) -> int:
    """Bits that hold ``h + sum of degree terms +-J`` exactly, whatever the codes: the width of a
    bias register and of the input adder.

    Each term is in [-2**(w-1), 2**(w-1)] (negating the most negative code gives +2**(w-1)), so
    the sum of degree + 1 of them needs w + 1 + ceil(log2(degree + 1)) bits.
    """
    return spec.weight_bits + 1 + max(int(degree), 0).bit_length()


def bias_of(h_code: int, j_codes) -> int:
    """The bias word of a p-bit, ``h - sum_k J_k`` (codes).

    Why a bias instead of h: ``h + sum (s ? J : -J) = (h - sum J) + 2 sum (s ? J : 0)``, so the
    neighbour terms become AND gates folded into the adders instead of a negation and a
    multiplexer per slot. The host computes it and rewrites it whenever it rewrites a J code.
    """
    return int(h_code) - sum(int(x) for x in j_codes)


def _signed(value: int, bits: int) -> int:
    """The low ``bits`` bits of ``value`` as two's complement."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _bits(count: int) -> int:
    """Address bits needed for ``count`` items (at least 1)."""
    return max(1, (max(int(count), 1) - 1).bit_length())


def _field(name: str, value: int, limit: int) -> int:
    if not 0 <= value <= limit:
        raise ValueError(f"{name} = {value} does not fit its register field (0..{limit})")
    return value


# --------------------------------------------------------------------------------------------
# Identity words
# --------------------------------------------------------------------------------------------


def shape_word(n: int, slots: int) -> int:
    """SHAPE: n [23:0], J slots per p-bit [31:24]."""
    return _field("n", n, MAX_PBITS) | _field("slots", slots, MAX_SLOTS) << 24


def decode_shape(word: int) -> tuple[int, int]:
    """(n, slots) from a SHAPE word."""
    return word & MAX_PBITS, word >> 24 & 0xFF


def colors_word(n_colors: int) -> int:
    """COLORS: number of colours [15:0]; bits [31:16] are 0."""
    return _field("colours", n_colors, MAX_COLORS)


def decode_colors(word: int) -> int:
    if word >> 16:
        raise ValueError(f"COLORS word {word:#010x} has reserved bits set")
    return word & MAX_COLORS


def format_word(spec: FixedPointSpec, rng: str) -> int:
    """FORMAT: weight_bits [5:0], frac_bits [10:6], input_bits [15:11], rng_bits [21:16],
    acc_bits [27:22], generator [29:28] (0 xorshift64, 1 lfsr32-xnor), beta_in_table [30],
    overflow = saturate [31]."""
    return (
        spec.weight_bits
        | spec.frac_bits << 6
        | spec.input_bits << 11
        | spec.rng_bits << 16
        | spec.acc_bits << 22
        | rng_kind_code(rng) << 28
        | int(spec.beta_in_table) << 30
        | int(spec.overflow == "saturate") << 31
    )


def design_word(design: HardwareDesign) -> int:
    """DESIGN: schedule [3:0] (index in SCHEDULES), read_latency [11:4], warmup_edges [19:12],
    initial spin +1 [20], max_degree [31:21] (0 = as many as the graph needs)."""
    md = 0 if design.max_degree is None else design.max_degree
    return (
        SCHEDULES.index(design.schedule)
        | _field("read_latency", design.read_latency, _MAX_LATENCY) << 4
        | _field("warmup_edges", design.warmup_edges, _MAX_WARMUP) << 12
        | int(design.initial_spin > 0) << 20
        | _field("max_degree", md, _MAX_DEGREE_FIELD) << 21
    )


def decode_design(format_value: int, design_value: int) -> HardwareDesign:
    """The whole :class:`HardwareDesign` from its FORMAT and DESIGN words.

    Raises
    ------
    ValueError
        A field holds a value no design has (unknown generator or schedule, widths out of range).
    """
    f, d = int(format_value), int(design_value)
    kind = f >> 28 & 3
    if kind >= len(RNG_KINDS):
        raise ValueError(f"FORMAT word {f:#010x} names generator {kind}, which does not exist")
    schedule = d & 0xF
    if schedule >= len(SCHEDULES):
        raise ValueError(f"DESIGN word {d:#010x} names schedule {schedule}, which does not exist")
    spec = FixedPointSpec(
        weight_bits=f & 0x3F,
        frac_bits=f >> 6 & 0x1F,
        input_bits=f >> 11 & 0x1F,
        rng_bits=f >> 16 & 0x3F,
        acc_bits=f >> 22 & 0x3F,
        beta_in_table=bool(f >> 30 & 1),
        overflow="saturate" if f >> 31 & 1 else "error",
    )
    max_degree = d >> 21 & _MAX_DEGREE_FIELD
    return HardwareDesign(
        fixed_point=spec,
        rng=RNG_KINDS[kind],
        schedule=SCHEDULES[schedule],
        read_latency=d >> 4 & 0xFF,
        warmup_edges=d >> 12 & 0xFF,
        initial_spin=1 if d >> 20 & 1 else -1,
        max_degree=max_degree or None,
    )


def status_word(color: int, warm_done: bool, running: bool) -> int:
    """STATUS (read at CONTROL): colour of the current cycle [15:0], warm-up done [16],
    running [17]."""
    return (int(color) & 0xFFFF) | int(bool(warm_done)) << 16 | int(bool(running)) << 17


def decode_status(word: int) -> tuple[int, bool, bool]:
    """(colour, warm-up done, running) from a STATUS word."""
    return word & 0xFFFF, bool(word >> 16 & 1), bool(word >> 17 & 1)


@dataclass(frozen=True)
class BoardWords:
    """The identity registers of an array, as a board reports them (IDENT carries these).

    Attributes
    ----------
    id, version, shape, colors, format, design : int
        The 32-bit words of ID, VERSION, SHAPE, COLORS, FORMAT, DESIGN.
    topology : int
        TOPOLOGY_HI:TOPOLOGY_LO (:func:`topology_id`).
    """

    id: int
    version: int
    topology: int
    shape: int
    colors: int
    format: int
    design: int

    @classmethod
    def for_array(cls, couplings, design: HardwareDesign) -> BoardWords:
        """The words an array built for ``couplings``' topology and ``design`` reports."""
        design.check(couplings)
        slots = int(couplings.degrees.max()) if couplings.n else 0
        return cls(
            id=MAGIC,
            version=REGMAP_VERSION,
            topology=topology_id(couplings),
            shape=shape_word(couplings.n, max(slots, 1)),
            colors=colors_word(max(couplings.n_colors, 1)),
            format=format_word(design.fixed_point, design.rng),
            design=design_word(design),
        )

    def register(self, reg: Register) -> int:
        """Value of identity register ``reg``."""
        return {
            Register.ID: self.id,
            Register.VERSION: self.version,
            Register.TOPOLOGY_LO: self.topology & _MASK,
            Register.TOPOLOGY_HI: self.topology >> 32,
            Register.SHAPE: self.shape,
            Register.FORMAT: self.format,
            Register.DESIGN: self.design,
            Register.COLORS: self.colors,
        }[Register(reg)]

    @property
    def n(self) -> int:
        return decode_shape(self.shape)[0]

    @property
    def slots(self) -> int:
        return decode_shape(self.shape)[1]

    @property
    def n_colors(self) -> int:
        return decode_colors(self.colors)

    def hardware_design(self) -> HardwareDesign:
        """The design these words describe (:func:`decode_design`)."""
        return decode_design(self.format, self.design)

    def check(self) -> None:
        """Raise ValueError naming the word if this is not a pbitsim array of this map version."""
        if self.id != MAGIC:
            raise ValueError(f"ID register reads {self.id:#010x}, not {MAGIC:#010x} ('PBIT')")
        if self.version != REGMAP_VERSION:
            raise ValueError(
                f"the array's register map is version {self.version}; this pbitsim speaks "
                f"version {REGMAP_VERSION}"
            )
        self.hardware_design()
        self.n_colors  # noqa: B018 (decoding checks the reserved bits)


# --------------------------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------------------------


class AddressMap:
    """Word addresses of the register port: ``address = region << index_bits | index``.

    Per-p-bit regions use ``index = i << slot_bits | slot``: J slot k of p-bit i is the k-th
    stored neighbour of i in CSR order (``couplings.indices[indptr[i] + k]``); seed word w holds
    state bits 32w..32w+31. Region ``TABLE`` uses ``index = k`` (0..input_max); spins are written
    one per address (bit 0: 1 = +1) and read 32 per word (region ``SPIN``, ``index = word``).

    A design with two generators per p-bit ("async-random") has SEED slots ``seed_words ..
    2 seed_words - 1`` for the enable generator's state (:meth:`enable_seed`); an
    "async-periodic" design has region TIMER, slot 0 PERIOD and slot 1 PHASE (:meth:`period`,
    :meth:`phase`).

    Parameters
    ----------
    n : int
        Number of p-bits.
    slots : int
        J slots per p-bit (the graph's maximum degree, at least 1).
    seed_words : int
        32-bit words per generator state.
    table_depth : int
    generators : int
        Generators per p-bit (1, or 2 for "async-random").
    timers : bool
        Region TIMER exists ("async-periodic").
    """

    def __init__(
        self,
        n: int,
        slots: int,
        seed_words: int,
        table_depth: int,
        generators: int = 1,
        timers: bool = False,
    ) -> None:
        self.n = int(n)
        self.slots = max(int(slots), 1)
        self.seed_words = int(seed_words)
        self.table_depth = int(table_depth)
        self.generators = int(generators)
        self.timers = bool(timers)
        self.pbit_bits = _bits(self.n)
        self.slot_bits = _bits(
            max(self.slots, self.seed_words * self.generators, 2 if self.timers else 1)
        )
        self.index_bits = max(
            self.pbit_bits + self.slot_bits,
            _bits(self.table_depth),
            _bits(len(Register)),
            _bits(self.spin_words),
        )
        self.width = self.index_bits + REGION_BITS

    @classmethod
    def for_design(cls, couplings, design: HardwareDesign) -> AddressMap:
        deg = int(couplings.degrees.max()) if couplings.n else 0
        return cls(
            couplings.n,
            deg,
            state_bits(design.rng) // DATA_BITS,
            design.fixed_point.input_max + 1,
            generators=design.generators,
            timers=design.schedule == "async-periodic",
        )

    @property
    def spin_words(self) -> int:
        """32-bit words that hold all spins (region SPIN, read side)."""
        return (self.n + DATA_BITS - 1) // DATA_BITS

    def address(self, region: Region, index: int) -> int:
        return int(region) << self.index_bits | int(index)

    def register(self, reg: Register) -> int:
        return self.address(Region.REG, reg)

    def bias(self, i: int) -> int:
        """Address of p-bit i's bias word, ``h_i - sum_k J_ik`` (:func:`bias_of`)."""
        return self.address(Region.BIAS, i << self.slot_bits)

    def j(self, i: int, k: int) -> int:
        return self.address(Region.J, i << self.slot_bits | k)

    def seed(self, i: int, word: int) -> int:
        return self.address(Region.SEED, i << self.slot_bits | word)

    def enable_seed(self, i: int, word: int) -> int:
        """Address of word ``word`` of p-bit i's enable generator ("async-random")."""
        return self.seed(i, self.seed_words + word)

    def period(self, i: int) -> int:
        """Address of p-bit i's PERIOD register ("async-periodic")."""
        return self.address(Region.TIMER, i << self.slot_bits | TIMER_PERIOD)

    def phase(self, i: int) -> int:
        """Address of p-bit i's PHASE register ("async-periodic")."""
        return self.address(Region.TIMER, i << self.slot_bits | TIMER_PHASE)

    def spin(self, i: int) -> int:
        return self.address(Region.SPIN, i << self.slot_bits)

    def spin_word(self, word: int) -> int:
        return self.address(Region.SPIN, word)

    def table(self, k: int) -> int:
        return self.address(Region.TABLE, k)

    def split(self, address: int) -> tuple[Region, int]:
        """(region, index) of an address; AddressError if the region does not exist."""
        address = int(address)
        if not 0 <= address < 1 << self.width:
            raise AddressError(address, f"outside the {self.width}-bit register port")
        region = address >> self.index_bits
        if region not in Region._value2member_map_:
            raise AddressError(address, f"region {region} does not exist")
        return Region(region), address & ((1 << self.index_bits) - 1)

    def pbit_slot(self, index: int) -> tuple[int, int]:
        """(p-bit, slot) of a per-p-bit index."""
        return index >> self.slot_bits, index & ((1 << self.slot_bits) - 1)

    def load_writes(
        self, couplings, design: HardwareDesign, seed_or_seeds, initial=None, table=None, **values
    ) -> list[tuple[int, int]]:
        """:func:`load_writes` with this map (kept for the gateware's tests)."""
        image = LoadImage.of(couplings, design, seed_or_seeds, initial, table, **values)
        return image_writes(self, image)


# --------------------------------------------------------------------------------------------
# Load images: what is written, as arrays
# --------------------------------------------------------------------------------------------


@dataclass
class LoadImage:
    """The run-time contents of an array, as arrays in CSR order.

    Attributes
    ----------
    indptr : np.ndarray
        The topology's CSR row pointers (which J slots exist).
    j_codes : np.ndarray of int64
        J code per stored neighbour, CSR order.
    bias : np.ndarray of int64
        Bias word per p-bit (:func:`bias_of`).
    table : np.ndarray of uint64
        Activation table T[0..input_max].
    seeds : np.ndarray of uint64
        Generator state per p-bit.
    spins : np.ndarray of int8
        Spin per p-bit (-1/+1).
    restart : bool
        The writes end with a CONTROL restart.
    enable : int
        The ENABLE register ("async-random"; 0 otherwise).
    enable_seeds : np.ndarray of uint64 or None
        Enable generator state per p-bit ("async-random").
    period, phase : np.ndarray of int64 or None
        PERIOD and PHASE registers per p-bit ("async-periodic").
    """

    indptr: np.ndarray
    j_codes: np.ndarray
    bias: np.ndarray
    table: np.ndarray
    seeds: np.ndarray
    spins: np.ndarray
    restart: bool = True
    enable: int = 0
    enable_seeds: np.ndarray | None = None
    period: np.ndarray | None = None
    phase: np.ndarray | None = None

    @classmethod
    def of(
        cls,
        couplings,
        design: HardwareDesign,
        seed_or_seeds,
        initial=None,
        table=None,
        *,
        p: float | None = None,
        period=None,
        phase=None,
        enable_seeds=None,
    ) -> LoadImage:
        """The image that loads ``couplings`` (quantised with ``design.fixed_point``).

        Parameters
        ----------
        couplings : Couplings
        design : HardwareDesign
        seed_or_seeds : int or array_like
            Master seed or per-p-bit seeds (:func:`pbitsim.rng.resolve_seeds`).
        initial : array_like of -1/+1, optional
            Initial spins; default ``design.initial_spin``.
        table : array_like, optional
            Table to load instead of the couplings' own (e.g. another beta).
        p, period, phase : optional
            Run-time values of the schedule (:func:`pbitsim.board.design.run_time_values`;
            defaults from there, phases derived from the master seed).
        enable_seeds : int or array_like, optional
            "async-random": a master seed or per-p-bit enable seeds
            (:func:`pbitsim.rng.resolve_enable_seeds`); default the master seed
            ``seed_or_seeds`` (required when that is an array).
        """
        design.check(couplings)
        q = couplings.quantized(design.fixed_point)
        n = q.n
        bias = np.array(
            [bias_of(q.h_codes[i], q.j_codes[q.indptr[i] : q.indptr[i + 1]]) for i in range(n)],
            dtype=np.int64,
        )
        spins = (
            np.full(n, design.initial_spin, np.int8)
            if initial is None
            else np.where(np.asarray(initial).reshape(n) > 0, 1, -1).astype(np.int8)
        )
        seeds = resolve_seeds(seed_or_seeds, n, design.rng)
        master = int(seed_or_seeds) if np.ndim(seed_or_seeds) == 0 else None
        values = run_time_values(design, n, master, p=p, period=period, phase=phase)
        if design.generators == 2:
            if enable_seeds is None and master is None:
                raise ValueError(
                    "async-random with explicit seeds needs enable_seeds (a master seed or one "
                    "per p-bit)"
                )
            en_seeds = resolve_enable_seeds(
                master if enable_seeds is None else enable_seeds, seeds, design.rng
            )
        elif enable_seeds is not None:
            raise ValueError(f"enable_seeds: schedule {design.schedule!r} has no enable generators")
        else:
            en_seeds = None
        return cls(
            indptr=np.asarray(q.indptr, np.int64),
            j_codes=np.asarray(q.j_codes, np.int64),
            bias=bias,
            table=np.asarray(q.table if table is None else table, np.uint64),
            seeds=seeds,
            spins=spins,
            enable=values["enable"],
            enable_seeds=en_seeds,
            period=values["period"],
            phase=values["phase"],
        )

    @property
    def n(self) -> int:
        return len(self.bias)

    @property
    def h_codes(self) -> np.ndarray:
        """h codes (bias plus the row sums of J)."""
        rows = np.repeat(np.arange(self.n), np.diff(self.indptr))
        return self.bias + np.bincount(rows, weights=self.j_codes, minlength=self.n).astype(
            np.int64
        )


def _region_pairs(amap: AddressMap, image: LoadImage, region: Region) -> list[tuple[int, int]]:
    """(address, data) of one region of an image, in ascending address order."""
    n = image.n
    if region is Region.BIAS:
        return [(amap.bias(i), int(image.bias[i]) & _MASK) for i in range(n)]
    if region is Region.J:
        ip = image.indptr
        return [
            (amap.j(i, k), int(image.j_codes[ip[i] + k]) & _MASK)
            for i in range(n)
            for k in range(ip[i + 1] - ip[i])
        ]
    if region is Region.TABLE:
        return [(amap.table(k), int(t)) for k, t in enumerate(image.table.tolist())]
    if region is Region.SEED:
        # Decision generator's words, then (async-random) the enable generator's.
        states = [image.seeds] + ([image.enable_seeds] if amap.generators == 2 else [])
        return [
            (amap.seed(i, g * amap.seed_words + w), (int(s[i]) >> (DATA_BITS * w)) & _MASK)
            for i in range(n)
            for g, s in enumerate(states)
            for w in range(amap.seed_words)
        ]
    if region is Region.SPIN:
        return [(amap.spin(i), 1 if s > 0 else 0) for i, s in enumerate(image.spins.tolist())]
    if region is Region.TIMER:
        return [
            pair
            for i in range(n)
            for pair in (
                (amap.period(i), int(image.period[i]) & _TIMER_MASK),
                (amap.phase(i), int(image.phase[i]) & _TIMER_MASK),
            )
        ]
    raise ValueError(f"region {region!r} is not part of a load image")


def region_addresses(amap: AddressMap, indptr, region: Region) -> list[int]:
    """Addresses of one load-image region of an array with CSR row pointers ``indptr``, in
    ascending order (what LOAD-DIGEST reads)."""
    n = len(indptr) - 1
    if region is Region.BIAS:
        return [amap.bias(i) for i in range(n)]
    if region is Region.J:
        return [amap.j(i, k) for i in range(n) for k in range(int(indptr[i + 1] - indptr[i]))]
    if region is Region.TABLE:
        return [amap.table(k) for k in range(amap.table_depth)]
    raise ValueError(f"region {region!r} is not digested")


def image_writes(amap: AddressMap, image: LoadImage) -> list[tuple[int, int]]:
    """The writes that put ``image`` into an array: BIAS, J, TABLE, SEED, SPIN, then TIMER
    ("async-periodic") or ENABLE ("async-random"), then (if ``image.restart``) CONTROL restart
    (which also loads the counters of "async-periodic" from PHASE)."""
    writes = []
    regions = [Region.BIAS, Region.J, Region.TABLE, Region.SEED, Region.SPIN]
    if amap.timers:
        regions.append(Region.TIMER)
    for region in regions:
        writes += _region_pairs(amap, image, region)
    if amap.generators == 2:
        writes.append((amap.register(Register.ENABLE), int(image.enable) & _ENABLE_MASK))
    if image.restart:
        writes.append((amap.register(Register.CONTROL), 1))
    return writes


def load_writes(
    couplings, design: HardwareDesign, seed_or_seeds, initial=None, table=None, **values
) -> list[tuple[int, int]]:
    """(address, data) writes that load a model, seeds, spins and the schedule's run-time values,
    then restart the schedule.

    After these writes (and with ``run`` high), an array built for ``couplings``' topology and
    ``design`` follows ``simulate_cycles(couplings, design, seed_or_seeds, cycles, initial,
    **values)`` cycle by cycle. Arguments as :meth:`LoadImage.of` (``values``: ``p``, ``period``,
    ``phase``, ``enable_seeds``).
    """
    amap = AddressMap.for_design(couplings, design)
    image = LoadImage.of(couplings, design, seed_or_seeds, initial, table, **values)
    return image_writes(amap, image)


def region_digest(pairs) -> int:
    """CRC-32 (``zlib.crc32``) over (address u32 LE, data u32 LE) pairs in ascending address
    order: one LOAD-DIGEST value."""
    crc = 0
    for addr, data in sorted(pairs):
        crc = zlib.crc32(struct.pack("<II", addr, data & _MASK), crc)
    return crc


def load_digests(couplings, design: HardwareDesign) -> dict[Region, int]:
    """The LOAD-DIGEST values (J, BIAS, TABLE) a board loaded with ``couplings`` reports."""
    amap = AddressMap.for_design(couplings, design)
    image = LoadImage.of(couplings, design, 1)  # seeds are not digested
    return {r: region_digest(_region_pairs(amap, image, r)) for r in DIGEST_REGIONS}


def weight_writes(old, new, design: HardwareDesign) -> list[tuple[int, int]]:
    """Writes that turn an array loaded with ``old`` into one loaded with ``new``: only the J,
    bias and table words that differ — no seeds, no spins, no restart, so the chain continues.

    Raises
    ------
    ValueError
        The two couplings have different topologies (naming both fingerprints).
    """
    if old.topology_fingerprint != new.topology_fingerprint:
        raise ValueError(
            f"new couplings have topology {new.topology_fingerprint[:16]}, the loaded ones "
            f"{old.topology_fingerprint[:16]}: only the weights of one topology can be rewritten"
        )
    amap = AddressMap.for_design(new, design)
    a = LoadImage.of(old, design, 1)
    b = LoadImage.of(new, design, 1)
    writes = []
    for region in (Region.BIAS, Region.J, Region.TABLE):
        before = dict(_region_pairs(amap, a, region))
        writes += [(addr, d) for addr, d in _region_pairs(amap, b, region) if before[addr] != d]
    return writes


# --------------------------------------------------------------------------------------------
# The storage: an array's run-time registers as arrays (the inverse of load_writes)
# --------------------------------------------------------------------------------------------


class RegisterFile:
    """The run-time storage of an array built for one topology and design, as plain arrays.

    It decodes every write exactly as the gateware does (J codes keep their low ``weight_bits``
    as two's complement, biases their low :func:`sum_width` bits, table entries their low
    ``rng_bits``, seeds their state bits) and reads back what it holds, so the digests it
    computes are those of a board's own storage. The board emulator keeps its registers here;
    :func:`read_load_writes` uses it to invert :func:`load_writes`.

    Parameters
    ----------
    couplings : Couplings
        The topology the array is built for (its values are not used).
    design : HardwareDesign

    Attributes
    ----------
    image : LoadImage
        The current contents (all zero after construction, ENABLE, PERIOD and PHASE included;
        spins ``design.initial_spin``; seeds, enable seeds too, derived from master seed 0, as
        gateware reset values are).
    words : BoardWords
    amap : AddressMap
    restarts : int
        CONTROL restarts written so far.
    dirty : set of Region
        Regions written since the owner last cleared it (the emulator refreshes its machine).
    """

    def __init__(self, couplings, design: HardwareDesign) -> None:
        self.design = design
        self.words = BoardWords.for_array(couplings, design)
        self.amap = AddressMap.for_design(couplings, design)
        n = couplings.n
        indptr = np.asarray(couplings.indptr, np.int64)
        seeds = derive_seeds(0, n, design.rng)
        periodic = design.schedule == "async-periodic"
        self.image = LoadImage(
            indptr=indptr,
            j_codes=np.zeros(indptr[-1], np.int64),
            bias=np.zeros(n, np.int64),
            # the gateware's reset table: beta = 1 (so TABLE reads match before any load)
            table=activation_table(design.fixed_point, 1.0),
            seeds=seeds,
            spins=np.full(n, design.initial_spin, np.int8),
            restart=False,
            enable_seeds=derive_enable_seeds(0, seeds, design.rng)
            if design.generators == 2
            else None,
            period=np.zeros(n, np.int64) if periodic else None,
            phase=np.zeros(n, np.int64) if periodic else None,
        )
        self._bias_bits = sum_width(design.fixed_point, self.amap.slots)
        self.restarts = 0
        self.dirty: set[Region] = set()
        self.status = 0  # STATUS word; the owner (the emulator's machine) keeps it current

    def _locate(self, address: int, write: bool) -> tuple[Region, int, int]:
        """(region, p-bit or entry, slot) of a valid address for this access."""
        amap, n = self.amap, self.image.n
        region, index = amap.split(address)
        if region is Region.REG:
            if index >= len(Register):
                raise AddressError(address, f"register {index} does not exist")
            if index == Register.ENABLE and amap.generators != 2:
                raise AddressError(address, "register ENABLE exists in async-random designs only")
            if write and index not in (Register.CONTROL, Register.ENABLE):
                raise AddressError(address, f"register {Register(index).name} is read-only")
            return region, index, 0
        if region is Region.TIMER and not amap.timers:
            raise AddressError(address, "region TIMER exists in async-periodic designs only")
        if region is Region.TABLE:
            if index >= amap.table_depth:
                raise AddressError(address, f"table entry {index} > input_max")
            return region, index, 0
        if region is Region.SPIN and not write:
            if index >= amap.spin_words:
                raise AddressError(address, f"spin word {index} >= {amap.spin_words}")
            return region, index, 0
        i, slot = amap.pbit_slot(index)
        if i >= n:
            raise AddressError(address, f"p-bit {i} does not exist (n = {n})")
        if region is Region.J:
            degree = int(self.image.indptr[i + 1] - self.image.indptr[i])
            if slot >= degree:
                raise AddressError(address, f"p-bit {i} has {degree} J slots, not slot {slot}")
        elif region is Region.SEED:
            if write is False:
                raise AddressError(address, "generator states are live and not readable")
            words = amap.seed_words * amap.generators
            if slot >= words:
                raise AddressError(address, f"seed word {slot} >= {words}")
        elif region is Region.TIMER:
            if slot > TIMER_PHASE:
                raise AddressError(
                    address, f"TIMER of p-bit {i} has slots 0 (PERIOD) and 1 (PHASE) only"
                )
        elif slot != 0:
            raise AddressError(address, f"{region.name} of p-bit {i} has slot 0 only")
        return region, i, slot

    def check(self, address: int, write: bool) -> None:
        """Raise AddressError if ``address`` cannot be written (or read)."""
        self._locate(address, write)

    def write(self, address: int, data: int) -> None:
        """One register-port write. Raises AddressError for an address with nothing to write."""
        region, i, slot = self._locate(address, write=True)
        data = int(data) & _MASK
        img, spec = self.image, self.design.fixed_point
        if region is Region.REG:
            if i == Register.ENABLE:
                img.enable = data & _ENABLE_MASK
                self.dirty.add(region)
            elif data & 1:  # CONTROL restart
                self.restarts += 1
            return
        if region is Region.BIAS:
            img.bias[i] = _signed(data, self._bias_bits)
        elif region is Region.J:
            img.j_codes[img.indptr[i] + slot] = _signed(data, spec.weight_bits)
        elif region is Region.TABLE:
            img.table[i] = data & ((1 << spec.rng_bits) - 1)
        elif region is Region.SEED:
            words = self.amap.seed_words
            states = img.seeds if slot < words else img.enable_seeds
            shift = DATA_BITS * (slot % words)
            keep = int(states[i]) & ~(_MASK << shift)
            states[i] = (keep | data << shift) & ((1 << state_bits(self.design.rng)) - 1)
        elif region is Region.TIMER:
            (img.period if slot == TIMER_PERIOD else img.phase)[i] = data & _TIMER_MASK
        elif region is Region.SPIN:
            img.spins[i] = 1 if data & 1 else -1
        self.dirty.add(region)

    def read(self, address: int) -> int:
        """One register-port read (REG, BIAS, J, TABLE, TIMER and SPIN words are readable)."""
        region, i, slot = self._locate(address, write=False)
        img = self.image
        if region is Region.REG:
            if i == Register.ENABLE:
                return int(img.enable)
            return self.status if i == Register.CONTROL else self.words.register(Register(i))
        if region is Region.TIMER:
            return int((img.period if slot == TIMER_PERIOD else img.phase)[i])
        if region is Region.BIAS:
            return int(img.bias[i]) & _MASK
        if region is Region.J:
            return int(img.j_codes[img.indptr[i] + slot]) & _MASK
        if region is Region.TABLE:
            return int(img.table[i])
        bits = img.spins[DATA_BITS * i : DATA_BITS * (i + 1)] > 0
        return int(sum(1 << k for k in np.flatnonzero(bits)))

    def apply(self, writes) -> RegisterFile:
        """Apply (address, data) writes in order; returns self."""
        for address, data in writes:
            self.write(address, data)
        return self

    def digests(self) -> dict[Region, int]:
        """LOAD-DIGEST from this storage: CRC-32 of each region's readable words."""
        return {
            region: region_digest(
                (a, self.read(a)) for a in region_addresses(self.amap, self.image.indptr, region)
            )
            for region in DIGEST_REGIONS
        }


def read_load_writes(writes, couplings, design: HardwareDesign) -> LoadImage:
    """The inverse of :func:`load_writes`: what an array holds after ``writes``.

    ``couplings`` gives the topology only. The result's ``restart`` says whether a CONTROL
    restart was written; :func:`image_writes` of it gives ``writes`` back (tested).
    """
    regs = RegisterFile(couplings, design).apply(writes)
    image = regs.image
    image.restart = regs.restarts > 0
    return image
