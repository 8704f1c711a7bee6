"""The first ``pbitsim demo`` after a fresh install, and the second one.

    python benchmarks/bench_cold_start.py [--repeats 1] [--command "demo --sweeps 20000"]

A fresh install has an empty Numba cache, so the first run compiles every kernel it calls. This
runs ``pbitsim demo`` in a new process with ``NUMBA_CACHE_DIR`` pointing at an empty folder (cold),
then again with the folder it filled (warm), and prints for each: wall and CPU time of the whole
process, the compile time and the sampling time the demo reports, the compiled kernels left in
the cache, and whether the run said "compiling sampling kernels (first run only)" exactly when it
compiled. On a shared machine compare CPU times: wall time grows with other people's load.
Re-run it when kernels are added: the cold start is what a new user waits through.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# "... in 0.53 s (+ 21.6 s compiling sampling kernels, first run only)"
_TIMES = re.compile(r"in (?P<sample>[\d.]+) s(?: \(\+ (?P<compile>[\d.]+) s compiling)?")


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes: unlike wall time, hardly
    changed by other people's load on a shared machine."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(cache: Path, args: list[str], out: Path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    cmd = [sys.executable, "-c", "from pbitsim.cli import main; main()", *args, "--out", str(out)]
    if args[:1] == ["demo"]:  # its HTML report and plots too, not into the current folder
        cmd += ["--report", str(out.with_suffix(".html"))]
    before = _children_cpu()
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    cpu = _children_cpu() - before
    if res.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    m = _TIMES.search(res.stdout)
    return {
        "wall": wall,
        "cpu": cpu,
        "sample": float(m["sample"]) if m else float("nan"),
        "compile": float(m["compile"]) if m and m["compile"] else 0.0,
        "said_compiling": "compiling sampling kernels (first run only)" in res.stderr,
        "kernels": len(list(cache.rglob("*.nbi"))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=1, help="cold runs (each with a new cache)")
    ap.add_argument("--command", default="demo", help="pbitsim subcommand and its arguments")
    args = ap.parse_args()
    command = shlex.split(args.command)
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            cache = Path(tmp) / f"cache{k}"
            cache.mkdir()
            cold.append(run_once(cache, command, Path(tmp) / "cold.png"))
            warm.append(run_once(cache, command, Path(tmp) / "warm.png"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"pbitsim {args.command}: {args.repeats} cold run(s); load average {load:.1f}")
    print(
        f"{'run':<6} {'wall s':>8} {'cpu s':>8} {'compile s':>10} {'sample s':>9} {'kernels':>8}"
        f"  said"
    )
    for name, runs in (("cold", cold), ("warm", warm)):
        keys = ("wall", "cpu", "compile", "sample")
        med = {k: statistics.median(r[k] for r in runs) for k in keys}
        said = (
            all(r["said_compiling"] for r in runs)
            if name == "cold"
            else not any(r["said_compiling"] for r in runs)
        )
        print(
            f"{name:<6} {med['wall']:>8.2f} {med['cpu']:>8.2f} {med['compile']:>10.2f} "
            f"{med['sample']:>9.2f} "
            f"{runs[-1]['kernels']:>8}  {'ok' if said else 'WRONG'}"
        )


if __name__ == "__main__":
    main()
