"""`pbitsim diagnose` on 10^7 draws of 16 spins: streamed (bounded memory) against in memory.

    python benchmarks/bench_diagnose_stream.py [--quick] [--draws N] [--replicas R] [--keep DIR]

Draws ``--draws`` draws per replica (default 10^7, one replica) of a periodic 4 x 4 lattice at
beta = 0.4 with the chromatic sampler, streamed to a ``.npy`` (160 MB at 10^7), then runs
``pbitsim diagnose SAMPLES --model MODEL`` (energy, magnetisation, edge mean; gradient noise) in
a fresh process for each run, twice over:

* streamed: the default ``--memory 512M`` (the samples exceed it, so the command streams);
* in memory: ``--memory 100G`` forces the in-memory path, skipped when the machine's available
  memory is below twice the path's estimate.

For each: median wall and CPU seconds (user + sys of the child) over ``--repeats`` runs (3), the
largest peak resident set size (``ru_maxrss`` of that child, from ``os.wait4``), and whether the
two tables agree line for line. The machine's load average and CPU model are printed with them:
wall times on a shared machine are only comparable within one run of this script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = "from pbitsim.cli import main; main()"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def make_samples(folder: Path, draws: int, replicas: int) -> tuple[Path, Path, float]:
    """The model file and the samples (written by pbitsim.sample with out=); sampling seconds."""
    import pbitsim
    from pbitsim import models

    model = folder / "lattice4x4.pbit"
    c = models.lattice_2d(4, 4, beta=0.4)
    c.save(model)
    base = folder / f"samples-{replicas}x{draws}"
    t = time.perf_counter()
    if not base.with_suffix(".json").exists():
        pbitsim.sample(c, draws, method="chromatic", replicas=replicas, seed=1, out=base)
    return model, base, time.perf_counter() - t


#: Runs the command as its only child and reports that child's resource usage: with one child,
#: RUSAGE_CHILDREN is exactly the command's (ru_maxrss is its peak resident set).
WRAP = """
import json, resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stdout.write(p.stdout)
sys.stderr.write(p.stderr)
print(json.dumps([p.returncode, u.ru_utime + u.ru_stime, u.ru_maxrss]), file=sys.stderr)
"""


def run_once(args: list[str]) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MiB, stdout) of one ``pbitsim`` command in a fresh process."""
    import json

    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-c", WRAP, sys.executable, "-c", CLI, *args],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t
    rc, cpu, rss_kib = json.loads(p.stderr.strip().splitlines()[-1])
    if rc != 0:
        raise RuntimeError(f"pbitsim {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return wall, cpu, rss_kib / 1024, p.stdout


def measure(args: list[str], repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        runs.append(run_once(args))
    return {
        "wall": statistics.median(r[0] for r in runs),
        "cpu": statistics.median(r[1] for r in runs),
        "rss": max(r[2] for r in runs),
        "table": [x for x in runs[0][3].splitlines() if not x.startswith("note: streamed")],
    }


def available_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10^6 draws, one run each")
    ap.add_argument("--draws", type=int, default=None, help="draws per replica (default 10^7)")
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=None, help="runs per path (default 3)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the samples in this folder")
    a = ap.parse_args()
    draws = a.draws or (10**6 if a.quick else 10**7)
    repeats = a.repeats or (1 if a.quick else 3)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = a.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        model, base, secs = make_samples(folder, draws, a.replicas)
        size = base.with_suffix(".npy").stat().st_size
        print(
            f"samples: {a.replicas} x {draws} draws x 16 spins ({size / 2**20:.0f} MiB on disk; "
            f"drawn in {secs:.1f} s)"
        )
        cmd = ["diagnose", str(base), "--model", str(model)]
        print(f"load average {os.getloadavg()[0]:.1f}")
        streamed = measure(cmd, repeats)
        print(
            f"streamed  (--memory 512M): {streamed['wall']:6.1f} s wall, {streamed['cpu']:6.1f} "
            f"s CPU, peak RSS {streamed['rss']:7.0f} MiB"
        )
        from pbitsim.diagnostics.streaming import in_memory_bytes
        from pbitsim.samples import load_samples

        s = load_samples(base, check=False)
        need = in_memory_bytes(s, 32, ("energy", "magnetisation", "edges"))
        if 2 * need > available_bytes():
            print(
                f"in memory: skipped (estimated {need / 2**30:.1f} GiB, "
                f"{available_bytes() / 2**30:.1f} GiB available)"
            )
        else:
            whole = measure([*cmd, "--memory", "100G"], repeats)
            print(
                f"in memory (--memory 100G): {whole['wall']:6.1f} s wall, {whole['cpu']:6.1f} "
                f"s CPU, peak RSS {whole['rss']:7.0f} MiB"
            )
            same = whole["table"] == streamed["table"]
            print(f"same table: {'yes' if same else 'NO'}")
            print(
                f"streamed / in memory: {streamed['wall'] / whole['wall']:.2f}x wall, "
                f"{streamed['rss'] / whole['rss']:.2f}x peak RSS"
            )
        print(f"load average {os.getloadavg()[0]:.1f}")
        print("\n".join(streamed["table"]))


if __name__ == "__main__":
    main()
