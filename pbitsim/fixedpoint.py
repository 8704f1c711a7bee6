"""The fixed-point rules: the one place that says how real couplings become hardware integers.

A p-bit array in hardware works on integers ("codes"). This module fixes, for every consumer
(the hardware-faithful simulator, the RTL generator, the host that streams weights), how:

* J and h are quantised to signed ``weight_bits``-wide codes with ``frac_bits`` fractional bits
  (value = code / 2**frac_bits), rounding to nearest with ties toward +inf;
* the input I_i = sum_j J_ij s_j + h_i is summed exactly in an ``acc_bits``-wide accumulator and
  then saturated symmetrically to ``input_bits`` (codes -M ... +M, M = 2**(input_bits-1) - 1);
* the activation table T[k], k = |I code|, holds
  round(2**rng_bits * (1 + tanh(beta * k / 2**frac)) / 2) capped at 2**rng_bits - 1, so that
  beta lives in the table and annealing reloads a table instead of re-synthesising a design
  (``beta_in_table=True``); the published design instead folds beta into J and h before
  quantisation (``beta_in_table=False``);
* the comparator turns (I code, table entry, random number R) into the new spin (:func:`decide`).

``docs/coupling-format.md`` and ``docs/hardware-model.md`` describe the same rules in prose.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FixedPointSpec",
    "FixedPointOverflowError",
    "QuantizedCouplings",
    "quantize_values",
    "activation_table",
    "saturate",
    "saturate_input",
    "decide_spin",
    "decide",
]


class FixedPointOverflowError(ValueError):
    """A value does not fit the fixed-point format it has to be stored in."""


_OVERFLOW_MODES = ("error", "saturate")


@dataclass(frozen=True)
class FixedPointSpec:
    """Widths and rules of the hardware's integer arithmetic.

    Parameters
    ----------
    weight_bits : int
        Width of a J or h code, two's complement (sign included).
    frac_bits : int
        Fractional bits of J, h and I: value = code / 2**frac_bits.
    input_bits : int
        Width the summed input I is saturated to before it indexes the activation table; the table
        has 2**(input_bits - 1) entries, indexed by |I code|.
    acc_bits : int
        Width of the accumulator that sums the neighbour contributions. It must be wide enough that
        the exact sum can never overflow; :meth:`QuantizedCouplings` checks it.
    rng_bits : int
        Width of the random number compared against a table entry.
    beta_in_table : bool
        True: beta scales the table (J, h quantised as given). False: beta is folded into J and h
        before quantisation and the table is built for beta = 1 (the published design).
    overflow : {"error", "saturate"}
        What happens when a J or h code falls outside ``weight_bits``: raise
        :class:`FixedPointOverflowError` (default) or clip to the range with a warning.
    """

    weight_bits: int = 8
    frac_bits: int = 4
    input_bits: int = 10
    acc_bits: int = 16
    rng_bits: int = 16
    beta_in_table: bool = True
    overflow: str = "error"

    def __post_init__(self) -> None:
        for name in ("weight_bits", "frac_bits", "input_bits", "acc_bits", "rng_bits"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool):
                raise TypeError(f"FixedPointSpec.{name} must be an int, not {value!r}")
        if not 2 <= self.weight_bits <= 32:
            raise ValueError(f"weight_bits must be in 2..32, not {self.weight_bits}")
        if not 0 <= self.frac_bits < self.weight_bits:
            raise ValueError(
                f"frac_bits must be in 0..weight_bits-1 = {self.weight_bits - 1}, "
                f"not {self.frac_bits}"
            )
        if not 2 <= self.input_bits <= 16:
            raise ValueError(f"input_bits must be in 2..16 (table size), not {self.input_bits}")
        if not max(self.weight_bits, self.input_bits) <= self.acc_bits <= 48:
            raise ValueError(
                f"acc_bits must be in max(weight_bits, input_bits)..48, not {self.acc_bits}"
            )
        if not 1 <= self.rng_bits <= 32:
            raise ValueError(f"rng_bits must be in 1..32, not {self.rng_bits}")
        if self.overflow not in _OVERFLOW_MODES:
            raise ValueError(f"overflow must be one of {_OVERFLOW_MODES}, not {self.overflow!r}")

    # -- presets ---------------------------------------------------------------------------
    @classmethod
    def default(cls) -> FixedPointSpec:
        """pbitsim's own design: s3.4 weights, 10-bit saturated input, 16-bit random numbers."""
        return cls()

    @classmethod
    def published(cls) -> FixedPointSpec:
        """The published UCSB p-computer design (``shared/reference/published-pbit-rtl.md``).

        6-bit s4.1 J, h and I; a 9-bit sum saturated to +-15.5; 32-entry table of 32-bit values;
        beta folded into J and h with clipping (and a warning) at the range ends.
        """
        return cls(
            weight_bits=6,
            frac_bits=1,
            input_bits=6,
            acc_bits=9,
            rng_bits=32,
            beta_in_table=False,
            overflow="saturate",
        )

    # -- derived numbers -------------------------------------------------------------------
    @property
    def code_min(self) -> int:
        return -(1 << (self.weight_bits - 1))

    @property
    def code_max(self) -> int:
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def input_max(self) -> int:
        """Largest |I code| after saturation (the table has ``input_max + 1`` entries)."""
        return (1 << (self.input_bits - 1)) - 1

    @property
    def acc_max(self) -> int:
        return (1 << (self.acc_bits - 1)) - 1

    @property
    def resolution(self) -> float:
        return 1.0 / (1 << self.frac_bits)

    @property
    def format_name(self) -> str:
        """Q-format name, e.g. ``s3.4`` = sign, 3 integer bits, 4 fraction bits."""
        return f"s{self.weight_bits - 1 - self.frac_bits}.{self.frac_bits}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FixedPointSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown fixed-point fields {sorted(unknown)}")
        return cls(**d)

    def canonical_bytes(self) -> bytes:
        """Stable encoding used in fingerprints (sorted-key JSON, ASCII)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode("ascii")


# --------------------------------------------------------------------------------------------
# Exact integer arithmetic. saturate and decide_spin are the rules, as plain scalar functions that
# pbitsim.sim.jit compiles; the array versions apply them elementwise.
# --------------------------------------------------------------------------------------------


def quantize_values(x, spec: FixedPointSpec, what: str = "value", labels=None) -> np.ndarray:
    """Quantise real values to codes: round to nearest, ties toward +inf; check the range.

    ``labels`` (optional callable index -> str) names the offending entry in error messages.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contains NaN or inf; cannot quantise")
    codes = np.floor(x * (1 << spec.frac_bits) + 0.5)
    bad = (codes < spec.code_min) | (codes > spec.code_max)
    if np.any(bad):
        lo = spec.code_min * spec.resolution
        hi = spec.code_max * spec.resolution
        if spec.overflow == "error":
            k = int(np.flatnonzero(bad.ravel())[0])
            label = labels(k) if labels is not None else f"{what}[{k}]"
            raise FixedPointOverflowError(
                f"{label} = {x.ravel()[k]:.6g} needs code {int(codes.ravel()[k])}, outside the "
                f"{spec.weight_bits}-bit {spec.format_name} range [{lo}, {hi}] "
                f"({int(bad.sum())} value(s) of {what} do not fit); rescale the model or widen "
                f"weight_bits / lower frac_bits"
            )
        warnings.warn(
            f"{int(bad.sum())} value(s) of {what} clipped to the {spec.format_name} range "
            f"[{lo}, {hi}]",
            stacklevel=3,
        )
        codes = np.clip(codes, spec.code_min, spec.code_max)
    return codes.astype(np.int64)


def activation_table(spec: FixedPointSpec, beta: float = 1.0) -> np.ndarray:
    """T[k] = min(2**r - 1, round(2**r * (1 + tanh(beta * k / 2**f)) / 2)), k = 0 .. input_max.

    ``beta`` is ignored (taken as 1) when ``spec.beta_in_table`` is False, since then it is
    already folded into the codes.
    """
    b = float(beta) if spec.beta_in_table else 1.0
    k = np.arange(spec.input_max + 1, dtype=np.float64)
    scale = float(1 << spec.rng_bits)
    t = np.floor(scale * (1.0 + np.tanh(b * k * spec.resolution)) / 2.0 + 0.5)
    t = np.minimum(t, scale - 1.0)
    return t.astype(np.uint64)


def saturate(acc, input_max):
    """The saturation rule on one exact accumulator value: clamp to +-input_max.

    A plain scalar function: :mod:`pbitsim.sim.jit` compiles it for the kernels.
    """
    if acc > input_max:
        return input_max
    if acc < -input_max:
        return -input_max
    return acc


def decide_spin(i_code, t, r):
    """The comparator on one p-bit: new spin (+1/-1) from the saturated input code, the table
    entry T = table[|I|] and the random number R.

    R == T gives -1 whatever the sign of I (the published tie rule); otherwise for I >= 0 the spin
    is +1 iff T > R, and for I < 0 it is -1 iff T > R. So P(s=+1) = (1 + tanh(beta I)) / 2 up to
    quantisation when R is uniform on [0, 2**r). A plain scalar function, compiled by
    :mod:`pbitsim.sim.jit`.
    """
    if t == r:
        return -1
    if i_code >= 0:
        return 1 if t > r else -1
    return -1 if t > r else 1


_saturate_all = np.vectorize(saturate, otypes=[np.int64])
_decide_all = np.vectorize(decide_spin, otypes=[np.int8])


def saturate_input(acc: int | np.ndarray, spec: FixedPointSpec):
    """:func:`saturate` with ``spec.input_max``, elementwise over arrays."""
    return _saturate_all(np.asarray(acc, dtype=np.int64), spec.input_max)


def decide(i_code, table: np.ndarray, r):
    """:func:`decide_spin` elementwise: new spins (int8) from input codes, the table and random
    numbers (arrays broadcast together)."""
    i_code = np.asarray(i_code, dtype=np.int64)
    r = np.asarray(r, dtype=np.uint64)
    return _decide_all(i_code, np.asarray(table)[np.abs(i_code)], r)


@dataclass(frozen=True)
class QuantizedCouplings:
    """The integer view of a :class:`~pbitsim.couplings.Couplings` that hardware runs.

    Attributes
    ----------
    spec : FixedPointSpec
    indptr, indices : np.ndarray
        The couplings' CSR structure (shared, not copied).
    j_codes : np.ndarray of int64
        CSR data as codes (beta folded in when ``spec.beta_in_table`` is False).
    h_codes : np.ndarray of int64
    table : np.ndarray of uint64
        Activation table for the couplings' beta.
    beta : float
    """

    spec: FixedPointSpec
    indptr: np.ndarray
    indices: np.ndarray
    j_codes: np.ndarray
    h_codes: np.ndarray
    table: np.ndarray
    beta: float
    j_error: np.ndarray  # quantised minus exact, in real units (effective, beta folded if so)
    h_error: np.ndarray

    @property
    def n(self) -> int:
        return len(self.h_codes)

    def input_codes(self, spins: np.ndarray) -> np.ndarray:
        """Saturated input codes of all sites for one ±1 state (exact integer arithmetic)."""
        s = np.asarray(spins, dtype=np.int64)
        acc = np.array(self.h_codes, dtype=np.int64)
        rows = np.repeat(np.arange(self.n), np.diff(self.indptr))
        np.add.at(acc, rows, self.j_codes * s[self.indices])
        return saturate_input(acc, self.spec)

    def effective_couplings(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(J data, h, beta) that the integers represent, in real units.

        With beta folded into the codes the effective beta is 1.
        """
        res = self.spec.resolution
        beta = self.beta if self.spec.beta_in_table else 1.0
        return self.j_codes * res, self.h_codes * res, beta

    def report(self) -> dict:
        """Quantisation error summary (in units of beta*J, the quantity that sets probabilities)."""
        scale = self.beta if self.spec.beta_in_table else 1.0
        je = np.abs(self.j_error) * scale
        he = np.abs(self.h_error) * scale
        return {
            "format": self.spec.format_name,
            "resolution": self.spec.resolution,
            "max_abs_error_beta_J": float(je.max()) if je.size else 0.0,
            "rms_error_beta_J": float(np.sqrt(np.mean(je**2))) if je.size else 0.0,
            "max_abs_error_beta_h": float(he.max()) if he.size else 0.0,
            "max_input_code": int(self.max_accumulator()),
            "input_saturates": bool(self.max_accumulator() > self.spec.input_max),
        }

    def max_accumulator(self) -> int:
        """Largest |sum| the accumulator can ever hold for these codes (worst-case spins)."""
        a = np.abs(self.j_codes)
        rows = np.repeat(np.arange(self.n), np.diff(self.indptr))
        per_site = np.bincount(rows, weights=a, minlength=self.n) + np.abs(self.h_codes)
        return int(per_site.max()) if per_site.size else 0


def quantize_couplings(indptr, indices, data, h, beta, spec: FixedPointSpec, labels=None):
    """Build the :class:`QuantizedCouplings` view; raises on overflow (see ``spec.overflow``)."""
    fold = 1.0 if spec.beta_in_table else float(beta)
    jx = np.asarray(data, dtype=np.float64) * fold
    hx = np.asarray(h, dtype=np.float64) * fold
    rows = np.repeat(np.arange(len(h)), np.diff(indptr))

    def j_label(k):
        return f"J[{rows[k]},{indices[k]}]" if labels is None else labels(rows[k], indices[k])

    j_codes = quantize_values(jx, spec, "J" + (" (times beta)" if fold != 1.0 else ""), j_label)
    h_codes = quantize_values(hx, spec, "h" + (" (times beta)" if fold != 1.0 else ""))
    q = QuantizedCouplings(
        spec=spec,
        indptr=indptr,
        indices=indices,
        j_codes=j_codes,
        h_codes=h_codes,
        table=activation_table(spec, beta),
        beta=float(beta),
        j_error=j_codes * spec.resolution - jx,
        h_error=h_codes * spec.resolution - hx,
    )
    worst = q.max_accumulator()
    if worst > spec.acc_max:
        raise FixedPointOverflowError(
            f"the input sum can reach code {worst}, which overflows the {spec.acc_bits}-bit "
            f"accumulator (max {spec.acc_max}); widen acc_bits to at least "
            f"{math.ceil(math.log2(worst + 1)) + 1}"
        )
    return q
