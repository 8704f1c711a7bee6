"""pbitsim/board/regmap.py: identity words and their decoders, load_writes and its inverse,
weight_writes, the register file's address checks and digests."""

import subprocess
import sys

import numpy as np
import pytest

from pbitsim import models
from pbitsim.board.design import HardwareDesign
from pbitsim.board.regmap import (
    DIGEST_REGIONS,
    MAX_COLORS,
    AddressError,
    AddressMap,
    BoardWords,
    LoadImage,
    Region,
    Register,
    RegisterFile,
    decode_design,
    decode_shape,
    decode_status,
    design_word,
    format_word,
    image_writes,
    load_digests,
    load_writes,
    read_load_writes,
    shape_word,
    status_word,
    weight_writes,
)
from pbitsim.couplings import Couplings
from pbitsim.fixedpoint import FixedPointSpec

DEFAULT = HardwareDesign.default()
PUBLISHED = HardwareDesign.published()


def random_couplings(n, p, seed, scale=1.0, max_degree=None):
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((n, n)) < p, 1)
    if max_degree is not None:
        for i in range(n):  # drop edges until every degree is within the limit
            while (upper[i].sum() + upper[:, i].sum()) > max_degree:
                j = np.flatnonzero(upper[i] | upper[:, i])[-1]
                upper[min(i, j), max(i, j)] = False
    J = np.where(upper, rng.normal(0, scale, (n, n)), 0.0)
    h = rng.normal(0, scale / 2, n)
    return Couplings.from_dense(J + J.T, h, beta=float(rng.uniform(0.5, 2.0)))


def designs():
    return [
        DEFAULT,
        PUBLISHED,
        HardwareDesign(
            fixed_point=FixedPointSpec(weight_bits=12, frac_bits=6, input_bits=12, acc_bits=24),
            warmup_edges=3,
            read_latency=2,
            initial_spin=1,
            max_degree=40,
        ),
        HardwareDesign(schedule="async-random", rng="lfsr32-xnor", read_latency=1),
        HardwareDesign(schedule="async-periodic", warmup_edges=2, read_latency=2),
    ]


DESIGN_IDS = ["default", "published", "wide", "async-random", "async-periodic"]


@pytest.mark.parametrize("design", designs(), ids=DESIGN_IDS)
def test_words_decode_to_the_design(design):
    assert decode_design(format_word(design.fixed_point, design.rng), design_word(design)) == design


def test_words_of_an_array_round_trip():
    c = models.lattice_2d(5, 7, J=0.5)
    w = BoardWords.for_array(c, PUBLISHED)
    w.check()
    assert (w.n, w.slots, w.n_colors) == (35, 4, c.n_colors)
    assert w.hardware_design() == PUBLISHED
    assert w.register(Register.TOPOLOGY_HI) << 32 | w.register(Register.TOPOLOGY_LO) == int(
        c.topology_fingerprint[:16], 16
    )


def test_shape_holds_what_the_old_layout_could_not():
    # 256 colours overflowed into the slot byte of register map version 1.
    assert decode_shape(shape_word(70_000, 255)) == (70_000, 255)
    with pytest.raises(ValueError, match="slots = 256"):
        shape_word(10, 256)
    assert MAX_COLORS >= 256


def test_words_wrong():
    w = BoardWords.for_array(models.ring(6), DEFAULT)
    with pytest.raises(ValueError, match="ID register"):
        BoardWords(**{**w.__dict__, "id": 0x1234}).check()
    with pytest.raises(ValueError, match="version 1"):
        BoardWords(**{**w.__dict__, "version": 1}).check()
    with pytest.raises(ValueError, match="generator 3"):
        decode_design(w.format | 3 << 28, w.design)
    with pytest.raises(ValueError, match="schedule 5"):
        decode_design(w.format, w.design | 5)
    with pytest.raises(ValueError, match="warmup_edges = 300"):
        design_word(HardwareDesign(warmup_edges=300))


def test_status_word():
    assert decode_status(status_word(300, True, False)) == (300, True, False)
    assert decode_status(status_word(2, False, True)) == (2, False, True)


@pytest.mark.parametrize("seed", range(7))
def test_load_writes_inverse_is_identity(seed):
    """load_writes -> inverse -> writes again is the identity, and the inverse holds the
    quantised couplings, seeds and spins (the schedules' run-time values:
    tests/test_async_hardware.py)."""
    design = designs()[seed % 5]
    c = random_couplings(
        12 + seed, 0.3, seed, scale=0.3 if design is PUBLISHED else 1.0, max_degree=6
    )
    initial = np.random.default_rng(seed).choice([-1, 1], c.n)
    writes = load_writes(c, design, seed + 11, initial)
    image = read_load_writes(writes, c, design)
    amap = AddressMap.for_design(c, design)
    assert image_writes(amap, image) == writes
    q = c.quantized(design.fixed_point)
    np.testing.assert_array_equal(image.j_codes, q.j_codes)
    np.testing.assert_array_equal(image.h_codes, q.h_codes)
    np.testing.assert_array_equal(image.table, q.table)
    np.testing.assert_array_equal(image.spins, initial)
    from pbitsim.rng import derive_seeds

    np.testing.assert_array_equal(image.seeds, derive_seeds(seed + 11, c.n, design.rng))
    assert image.restart


def test_inverse_keeps_only_the_stored_bits():
    c = models.ring(4)
    amap = AddressMap.for_design(c, DEFAULT)
    regs = RegisterFile(c, DEFAULT)
    regs.write(amap.j(1, 0), 0x1FF)  # 9 bits into an 8-bit code: the low 8 bits, signed
    assert regs.image.j_codes[c.indptr[1]] == -1
    assert regs.read(amap.j(1, 0)) == 0xFFFFFFFF


def test_weight_writes_change_only_what_differs():
    c1 = random_couplings(10, 0.4, 1, max_degree=5)
    c2 = Couplings(c1.indptr, c1.indices, c1.data.copy(), c1.h.copy(), c1.beta, c1.coloring)
    # Change one edge's weight (both directions) and nothing else.
    i = 3
    j = int(c1.indices[c1.indptr[i]])
    data = c2.data.copy()
    for a, b in ((i, j), (j, i)):
        data[c1.indptr[a] + list(c1.indices[c1.indptr[a] : c1.indptr[a + 1]]).index(b)] += 0.5
    c2 = Couplings(c1.indptr, c1.indices, data, c1.h, c1.beta, c1.coloring)
    writes = weight_writes(c1, c2, DEFAULT)
    amap = AddressMap.for_design(c1, DEFAULT)
    regions = sorted({amap.split(a)[0] for a, _ in writes})
    assert regions == [Region.BIAS, Region.J] and len(writes) == 4  # 2 J slots, 2 biases
    regs = RegisterFile(c1, DEFAULT).apply(load_writes(c1, DEFAULT, 5))
    spins, seeds = regs.image.spins.copy(), regs.image.seeds.copy()
    regs.apply(writes)
    want = LoadImage.of(c2, DEFAULT, 5)
    np.testing.assert_array_equal(regs.image.j_codes, want.j_codes)
    np.testing.assert_array_equal(regs.image.bias, want.bias)
    np.testing.assert_array_equal(regs.image.spins, spins)
    np.testing.assert_array_equal(regs.image.seeds, seeds)
    assert weight_writes(c1, c1, DEFAULT) == []
    # A new beta rewrites the table (beta lives in it), nothing else.
    beta_writes = weight_writes(c1, c1.with_beta(2.0), DEFAULT)
    assert {amap.split(a)[0] for a, _ in beta_writes} == {Region.TABLE}


def test_weight_writes_wrong_topology():
    with pytest.raises(ValueError, match="topology"):
        weight_writes(models.ring(6), models.ring(7), DEFAULT)


def test_digests_name_the_region_that_differs():
    c = random_couplings(9, 0.4, 3, max_degree=5)
    regs = RegisterFile(c, DEFAULT).apply(load_writes(c, DEFAULT, 1))
    want = load_digests(c, DEFAULT)
    assert regs.digests() == want
    amap = regs.amap
    regs.write(amap.j(0, 0), regs.read(amap.j(0, 0)) + 1)
    got = regs.digests()
    assert [r for r in DIGEST_REGIONS if got[r] != want[r]] == [Region.J]
    regs.write(amap.table(3), 0)
    got = regs.digests()
    assert [r for r in DIGEST_REGIONS if got[r] != want[r]] == [Region.J, Region.TABLE]


def test_register_file_addresses():
    # A path of 9 with two chords at p-bit 4: p-bit 0 has 2 neighbours, p-bit 4 has 4.
    edges = [(i, i + 1, 0.5) for i in range(8)] + [(4, 0, 0.5), (4, 8, 0.5)]
    c = Couplings.from_edges(9, edges)
    regs = RegisterFile(c, DEFAULT)
    amap = regs.amap
    assert amap.slot_bits == 2
    good = [amap.bias(8), amap.j(4, 3), amap.table(511), amap.seed(8, 1), amap.spin(8)]
    for a in good:
        regs.check(a, write=True)
    bad = {
        amap.j(0, 2): "2 J slots",
        amap.bias(9): "p-bit 9 does not exist",
        amap.bias(0) + 1: "slot 0 only",
        amap.seed(0, 2): "seed word 2",
        amap.register(Register.ID): "read-only",
        amap.address(Region.REG, 12): "register 12",
        7 << amap.index_bits: "region 7",
        1 << amap.width: "outside",
    }
    for a, why in bad.items():
        with pytest.raises(AddressError, match=why) as e:
            regs.write(a, 1)
        assert e.value.address == a
    with pytest.raises(AddressError, match="not readable"):
        regs.read(amap.seed(0, 0))
    assert regs.read(amap.register(Register.ID)) == 0x50424954


def test_design_check():
    star = Couplings.from_edges(8, [(0, k, 0.5) for k in range(1, 8)])
    with pytest.raises(ValueError, match="p-bit 0 has 7 neighbours but the design has 6"):
        PUBLISHED.check(star)
    DEFAULT.check(star)
    with pytest.raises(ValueError, match="colours do not fit"):
        DEFAULT.check(star, n_colors=MAX_COLORS + 1)


def test_board_modules_import_no_compiler():
    code = (
        "import sys, pbitsim.board.regmap, pbitsim.board.protocol, pbitsim.board.session; "
        "bad = [m for m in ('numba', 'amaranth', 'serial') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
