"""The grid file: a declarative TOML description of a sweep, parsed into cells.

A grid is the product of its axes (models x methods x betas x seeds x sweeps x burn-in x replicas x
thin x method-option alternatives); every combination is a :class:`Cell`. The file's tables and
keys are documented in ``docs/sweeps.md``; :data:`SCHEMA` lists them with their defaults. Errors
name the file, the line and the key (:class:`GridError`).

A cell's key is a hash of its parameters (everything that changes what the cell computes, the
model's label excepted) and of the fingerprint of the couplings it samples, so a cell file on disk
belongs to exactly one run of one model; the pbitsim version is recorded in the row, not keyed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pbitsim.couplings import Couplings

__all__ = ["Cell", "Grid", "GridError", "load_grid", "parse_grid", "DIAGNOSTICS", "SCHEMA"]

#: What a cell can compute (``grid.diagnostics``); see ``docs/sweeps.md``.
DIAGNOSTICS = ("tau", "q", "exact", "kl")

#: Largest n whose 2**n states are enumerated for a teacher's moments and for the KL.
ENUMERATION_MAX_N = 20
#: Largest n ``exact.max_n`` may be: dense sweep kernels stop at 2**12 states.
SPECTRA_MAX_N = 12

_REQUIRED = object()

# table -> key -> default (_REQUIRED: must be given). A list-valued grid key is an axis.
SCHEMA: dict[str, dict] = {
    "grid": {
        "name": None,
        "models": _REQUIRED,
        "methods": ["chromatic"],
        "betas": None,
        "beta_unit": "absolute",
        "seeds": [0],
        "sweeps": 1000,
        "burn_in": 100,
        "replicas": 16,
        "thin": 1,
        "diagnostics": ["tau"],
        "save_samples": False,
    },
    # method options: every key holds a list of alternatives (an axis)
    "options": {},
    "data": {"teacher": "beta", "factor": 1.25, "sigma": 0.3, "seed": 0, "fields": False},
    "exact": {"max_n": SPECTRA_MAX_N, "modes": 2},
    "tracking": {"factor": None},
    "plot": {"value": None, "x": None, "y": None, "facet": None},
    "run": {"numba_threads": 1, "retries": 2},
}

#: grid keys that may be a list (an axis) or one value
_AXES = ("methods", "betas", "seeds", "sweeps", "burn_in", "replicas", "thin")
#: the names of the axes as columns of the result table, in cell order
AXIS_COLUMNS = ("model", "method", "beta", "seed", "sweeps", "burn_in", "replicas", "thin")


class GridError(ValueError):
    """A grid file that cannot be run: the message names the file, the line and the key."""


@dataclass(frozen=True, eq=False)
class Cell:
    """One run of a grid: a model, a method and its settings, and what to compute.

    Attributes
    ----------
    index : int
        Position in the grid (cell order: the axes in :data:`AXIS_COLUMNS` order, options last).
    key : str
        Hash of ``params`` (without the model's label), ``settings`` and the couplings'
        fingerprint: the cell's identity on disk.
    params : dict
        The cell's parameters (JSON values): model (its label in the grid file), method, beta
        (as written), beta_used (the inverse temperature sampled), seed, sweeps, burn_in,
        replicas, thin, options.
    couplings : Couplings
        The model at the beta sampled (shipped to the worker: no shared filesystem needed).
    settings : dict
        Grid-wide settings the cell needs: diagnostics, data, exact, tracking, save_samples,
        numba_threads.
    """

    index: int
    key: str
    params: dict
    couplings: Couplings
    settings: dict = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return self.couplings.fingerprint

    def __repr__(self) -> str:
        p = self.params
        return (
            f"Cell({self.index}, {p['model']!r}, {p['method']!r}, beta={p['beta_used']:.4g}, "
            f"seed={p['seed']}, key={self.key})"
        )


@dataclass
class Grid:
    """A parsed grid file (:func:`load_grid`); :meth:`cells` expands it.

    Attributes
    ----------
    name : str
    spec : dict
        Every table with its defaults filled in (what :data:`SCHEMA` describes).
    source : Path or None
        The file it came from (model files are found relative to it).
    text : str
        The file's text (for error messages with line numbers).
    quick : bool
        Whether the file's ``[quick]`` overrides were applied.
    """

    name: str
    spec: dict
    source: Path | None = None
    text: str = ""
    quick: bool = False
    _cells: list | None = field(default=None, repr=False)

    # -- conveniences -----------------------------------------------------------------------
    @property
    def diagnostics(self) -> list[str]:
        return list(self.spec["grid"]["diagnostics"])

    @property
    def tracking_factor(self) -> float | None:
        return self.spec["tracking"]["factor"]

    @property
    def retries(self) -> int:
        return int(self.spec["run"]["retries"])

    @property
    def numba_threads(self) -> int:
        return int(self.spec["run"]["numba_threads"])

    def caps(self) -> dict:
        """The limits of the exact diagnostics, as written into the sweep's output."""
        return {
            "exact_spectra_max_n": int(self.spec["exact"]["max_n"]),
            "enumeration_max_n": ENUMERATION_MAX_N,
            "modes_per_sector": int(self.spec["exact"]["modes"]),
        }

    def axes(self) -> dict[str, list]:
        """The grid's axes with their values (option axes as ``option_<name>``)."""
        g = self.spec["grid"]
        out = {
            "model": list(g["models"]),
            "method": _as_list(g["methods"]),
            "beta": _as_list(g["betas"]) if g["betas"] is not None else [None],
            "seed": _as_list(g["seeds"]),
            "sweeps": _as_list(g["sweeps"]),
            "burn_in": _as_list(g["burn_in"]),
            "replicas": _as_list(g["replicas"]),
            "thin": _as_list(g["thin"]),
        }
        for k, v in self.spec["options"].items():
            out[f"option_{k}"] = [json.dumps(x) for x in v]
        return out

    # -- expansion --------------------------------------------------------------------------
    def cells(self) -> list[Cell]:
        """Every cell of the grid, in order (models are built once, here, in the client).

        Raises
        ------
        GridError
            A model that cannot be built, or two cells that are the same run.
        """
        if self._cells is not None:
            return self._cells
        g, loc = self.spec["grid"], _Locator(self.source, self.text)
        models = {label: self._model(label, loc) for label in dict.fromkeys(g["models"])}
        opt_names = list(self.spec["options"])
        opt_values = [self.spec["options"][k] for k in opt_names]
        settings = {
            "diagnostics": self.diagnostics,
            "data": dict(self.spec["data"]),
            "exact": dict(self.spec["exact"]),
            "tracking": dict(self.spec["tracking"]),
            "save_samples": bool(g["save_samples"]),
        }
        keyed = json.dumps(settings, sort_keys=True)
        settings["numba_threads"] = self.numba_threads  # how, not what: not keyed
        cells, seen = [], {}
        axes = self.axes()
        product = itertools.product(
            g["models"],
            axes["method"],
            axes["beta"],
            axes["seed"],
            axes["sweeps"],
            axes["burn_in"],
            axes["replicas"],
            axes["thin"],
            *opt_values,
        )
        for index, (label, method, beta, seed, sweeps, burn_in, reps, thin, *opts) in enumerate(
            product
        ):
            base = models[label]
            used = base.beta if beta is None else self._beta(base, float(beta))
            c = base if used == base.beta else base.with_beta(used)
            params = {
                "model": label,
                "method": method,
                "beta": beta,
                "beta_unit": g["beta_unit"],
                "beta_used": float(used),
                "seed": int(seed),
                "sweeps": int(sweeps),
                "burn_in": int(burn_in),
                "replicas": int(reps),
                "thin": int(thin),
                "options": dict(zip(opt_names, opts)),
            }
            ident = {k: v for k, v in params.items() if k != "model"}
            blob = json.dumps([ident, keyed, c.fingerprint], sort_keys=True)
            key = hashlib.sha256(blob.encode()).hexdigest()[:20]
            if key in seen:
                other = seen[key]
                raise loc.error(
                    "grid.models",
                    f"cells {other.index} ({other.params['model']!r}) and {index} ({label!r}) "
                    f"are the same run: the two models have the same couplings",
                    value=label,
                )
            cell = Cell(index, key, params, c, settings)
            seen[key] = cell
            cells.append(cell)
        self._cells = cells
        return cells

    def _beta(self, c: Couplings, x: float) -> float:
        if self.spec["grid"]["beta_unit"] == "absolute":
            return x
        return x / max_field(c)

    def _model(self, label: str, loc: _Locator) -> Couplings:
        from pbitsim import models
        from pbitsim.fileformat import load

        path = Path(label)
        if self.source is not None and not path.is_absolute():
            path = self.source.parent / path
        try:
            if path.suffix == ".pbit" or path.exists():
                return load(path)
            if ":" not in label:
                raise ValueError(
                    f"{label!r} is neither a model file nor a built-in spec such as "
                    + ", ".join(ex for _, _, ex in models.SPECS.values())
                )
            return models.from_spec(label)
        except (OSError, ValueError) as e:
            raise loc.error("grid.models", str(e), value=label) from None


def max_field(c: Couplings) -> float:
    """max_i sum_j |J_ij|: ``beta_unit = "max-field"`` betas are multiples of its inverse."""
    m = float(np.abs(c.to_scipy()).sum(axis=1).max()) if c.data.size else 0.0
    if m == 0:
        raise ValueError(
            "beta_unit 'max-field' needs a model with couplings (max_i sum_j |J_ij| = 0)"
        )
    return m


def _as_list(x) -> list:
    return list(x) if isinstance(x, list) else [x]


# -- parsing ---------------------------------------------------------------------------------
def load_grid(path, *, quick: bool = False) -> Grid:
    """Read and check a grid file.

    Parameters
    ----------
    path : path
        The TOML file.
    quick : bool
        Apply the file's ``[quick]`` tables (overrides for a fast run, e.g. in CI).

    Raises
    ------
    GridError
        Not TOML, an unknown table or key, a value of the wrong type, an unknown method,
        option or diagnostic; the message names the file, line and key.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise GridError(f"cannot read grid file {path}: {e}") from None
    return parse_grid(text, source=path, quick=quick)


def parse_grid(text: str, *, source: Path | None = None, quick: bool = False) -> Grid:
    """A :class:`Grid` from TOML text (see :func:`load_grid`)."""
    loc = _Locator(source, text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise GridError(f"{loc.name}: not a valid TOML file: {e}") from None
    over = raw.pop("quick", {})
    if not isinstance(over, dict):
        raise loc.error("quick", "must be a table of tables, e.g. [quick.grid]")
    for table, values in raw.items():
        _check_table(table, values, loc)
    for table, values in over.items():
        _check_table(table, values, loc, prefix="quick.")
    if quick:
        for table, values in over.items():
            raw.setdefault(table, {}).update(values)
    spec = {t: {k: v for k, v in keys.items() if v is not _REQUIRED} for t, keys in SCHEMA.items()}
    for table, values in raw.items():
        spec[table].update(values)
    if "models" not in spec["grid"]:
        raise loc.error("grid.models", "the grid needs a list of models (key 'models' in [grid])")
    _check_values(spec, loc)
    name = spec["grid"]["name"] or (source.stem if source is not None else "sweep")
    return Grid(name=name, spec=spec, source=source, text=text, quick=quick)


def _check_table(table: str, values, loc: _Locator, prefix: str = "") -> None:
    if table not in SCHEMA:
        raise loc.error(
            f"{prefix}{table}", f"unknown table [{prefix}{table}]; known: {', '.join(SCHEMA)}"
        )
    if not isinstance(values, dict):
        raise loc.error(f"{prefix}{table}", "must be a table")
    if table == "options":
        for k, v in values.items():
            if not isinstance(v, list) or not v:
                raise loc.error(
                    f"{prefix}options.{k}",
                    "a method option holds a non-empty list of alternatives (an axis); for "
                    f"one value write {k} = [value]",
                )
        return
    for k in values:
        if k not in SCHEMA[table]:
            raise loc.error(
                f"{prefix}{table}.{k}",
                f"unknown key {k!r} in [{table}]; known: {', '.join(SCHEMA[table])}",
            )


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _check_values(spec: dict, loc: _Locator) -> None:
    from pbitsim.sampling import methods

    g = spec["grid"]

    def axis(key: str, ok, what: str, low=None) -> None:
        vals = g[key] if isinstance(g[key], list) else [g[key]]
        if isinstance(g[key], list) and not vals:
            raise loc.error(f"grid.{key}", "an axis needs at least one value")
        for v in vals:
            if not ok(v) or (low is not None and v < low):
                raise loc.error(
                    f"grid.{key}", f"must be {what} or a list of them, not {v!r}", value=v
                )

    if not isinstance(g["models"], list) or not g["models"]:
        raise loc.error("grid.models", "must be a non-empty list of model specs or files")
    for m in g["models"]:
        if not isinstance(m, str) or not m:
            raise loc.error("grid.models", f"a model is a spec or a file name, not {m!r}", value=m)
    axis("methods", lambda x: isinstance(x, str), "a method name")
    known = methods()
    for m in _as_list(g["methods"]):
        if m not in known:
            raise loc.error("grid.methods", f"unknown method {m!r}; available: {known}", value=m)
    if g["betas"] is not None:
        axis("betas", lambda x: _is_num(x) and x > 0, "a number > 0")
    if g["beta_unit"] not in ("absolute", "max-field"):
        raise loc.error(
            "grid.beta_unit", f"must be 'absolute' or 'max-field', not {g['beta_unit']!r}"
        )
    axis("seeds", _is_int, "an integer >= 0", 0)
    axis("sweeps", _is_int, "an integer >= 1", 1)
    axis("burn_in", _is_int, "an integer >= 0", 0)
    axis("replicas", _is_int, "an integer >= 1", 1)
    axis("thin", _is_int, "an integer >= 1", 1)
    d = g["diagnostics"]
    if not isinstance(d, list) or any(x not in DIAGNOSTICS for x in d):
        bad = [x for x in d if x not in DIAGNOSTICS] if isinstance(d, list) else d
        raise loc.error(
            "grid.diagnostics", f"unknown diagnostic(s) {bad!r}; choose from {list(DIAGNOSTICS)}"
        )
    if not isinstance(g["save_samples"], bool):
        raise loc.error("grid.save_samples", "must be true or false")
    if g["name"] is not None and (not isinstance(g["name"], str) or not g["name"]):
        raise loc.error("grid.name", "must be a non-empty string")
    for sweeps, thin in itertools.product(_as_list(g["sweeps"]), _as_list(g["thin"])):
        if sweeps % thin:
            raise loc.error("grid.thin", f"sweeps ({sweeps}) must be a multiple of thin ({thin})")
    if "q" in d and min(_as_list(g["replicas"])) < 3:
        raise loc.error("grid.replicas", "Q needs at least 3 replicas (independent estimates)")
    _check_options(spec, loc)

    data = spec["data"]
    if data["teacher"] not in ("beta", "perturb"):
        raise loc.error("data.teacher", f"must be 'beta' or 'perturb', not {data['teacher']!r}")
    for k in ("factor", "sigma"):
        if not _is_num(data[k]) or data[k] <= 0:
            raise loc.error(f"data.{k}", f"must be a number > 0, not {data[k]!r}")
    if not _is_int(data["seed"]) or data["seed"] < 0:
        raise loc.error("data.seed", f"must be an integer >= 0, not {data['seed']!r}")
    if not isinstance(data["fields"], bool):
        raise loc.error("data.fields", "must be true or false")
    ex = spec["exact"]
    if not _is_int(ex["max_n"]) or not 1 <= ex["max_n"] <= SPECTRA_MAX_N:
        raise loc.error(
            "exact.max_n",
            f"must be an integer in 1..{SPECTRA_MAX_N} (dense spectra), not {ex['max_n']!r}",
        )
    if not _is_int(ex["modes"]) or ex["modes"] < 1:
        raise loc.error("exact.modes", f"must be an integer >= 1, not {ex['modes']!r}")
    f = spec["tracking"]["factor"]
    if f is not None and (not _is_num(f) or f <= 1):
        raise loc.error("tracking.factor", f"must be a number > 1, not {f!r}")
    if f is not None and not {"q", "exact"} <= set(d):
        raise loc.error(
            "tracking.factor",
            "tracking compares predictions with Q: it needs diagnostics 'q' and 'exact'",
        )
    p = spec["plot"]
    for k in ("x", "y", "facet"):
        if p[k] is not None and not isinstance(p[k], str):
            raise loc.error(f"plot.{k}", f"must be a column name, not {p[k]!r}")
    v = p["value"]
    if v is not None and not (
        isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(x, str) for x in v))
    ):
        raise loc.error("plot.value", f"must be a column name or a list of them, not {v!r}")
    r = spec["run"]
    if not _is_int(r["numba_threads"]) or r["numba_threads"] < 1:
        raise loc.error("run.numba_threads", f"must be an integer >= 1, not {r['numba_threads']!r}")
    if not _is_int(r["retries"]) or r["retries"] < 0:
        raise loc.error("run.retries", f"must be an integer >= 0, not {r['retries']!r}")


def _check_options(spec: dict, loc: _Locator) -> None:
    """Every method of the grid must accept every option (checked on the method's class)."""
    from pbitsim.sampling import _check_options, get_method

    names = list(spec["options"])
    if not names:
        return
    for m in _as_list(spec["grid"]["methods"]):
        try:
            cls = get_method(m)
        except ImportError:
            continue  # a plug-in not importable here: its worker checks the options
        try:
            _check_options(cls, m, dict.fromkeys(names))
        except ValueError as e:
            bad = next((k for k in names if f"'{k}'" in str(e)), names[0])
            raise loc.error(f"options.{bad}", str(e)) from None


class _Locator:
    """Line numbers of keys in a TOML text, for error messages (``table.key`` -> line)."""

    _HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\s]+?)\s*\]\s*(#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")

    def __init__(self, source: Path | None, text: str) -> None:
        self.name = str(source) if source is not None else "<grid>"
        self.lines = text.splitlines()
        self.where: dict[str, int] = {}
        table = ""
        for k, line in enumerate(self.lines, 1):
            h = self._HEADER.match(line)
            if h:
                table = re.sub(r"\s+", "", h.group(1))
                self.where.setdefault(table, k)
                continue
            m = self._KEY.match(line)
            if m:
                full = f"{table}.{m.group(1)}" if table else m.group(1)
                self.where.setdefault(full, k)

    def line(self, key: str, value=None) -> int | None:
        """The line of ``key`` (its table's header when the key is not written; with ``value``
        the first line at or after the key that contains it, for lists over several lines)."""
        k = self.where.get(key)
        if k is None:
            parts = key.split(".")
            for cut in range(len(parts) - 1, 0, -1):
                k = self.where.get(".".join(parts[:cut]))
                if k is not None:
                    break
        if k is not None and value is not None:
            needle = json.dumps(value) if isinstance(value, str) else str(value)
            for j in range(k, min(k + 200, len(self.lines) + 1)):
                if needle in self.lines[j - 1] or str(value) in self.lines[j - 1]:
                    return j
        return k

    def error(self, key: str, message: str, value=None) -> GridError:
        k = self.line(key, value)
        at = f"line {k}" if k is not None else "(not in the file: a default)"
        return GridError(f"{self.name}, {at}, key '{key}': {message}")
