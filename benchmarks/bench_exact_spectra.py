"""Exact spectra matrix-free: gaps, flip-sector gaps and exact tau_int at n = 12..20.

    python benchmarks/bench_exact_spectra.py [--quick] [--sizes 12 14 16 18 20] [--dense-14]

For each n, kernel (random-scan, sequential, chromatic) and model, a fresh process builds
``ExactChain(c, kernel, backend="krylov")`` and computes the spectral gap (both flip sectors when
h = 0) and the exact tau_int of the energy and the magnetisation. Printed per cell: seconds to
build (log-weights, update coefficients, the p P = p check), for the gap(s), for the two tau
solves (wall; in brackets the process's CPU seconds, which other people's load inflates less);
operator applications (one kernel step each) and solver iterations; peak RSS of the process
above its RSS after the imports. Seconds are medians of 3 runs in the process for
n <= 16, one run above. The dense backend (``transition_matrix``, LU, full eigendecomposition)
runs beside it where it fits (n = 12; ``--dense-14`` adds random scan at n = 14, its sparse LU
took ~100 s), and its gap and tau are compared with the matrix-free ones.

Models (``pbitsim.models.spin_glass``, J = +-1 on an Erdos-Renyi graph p = 0.5, beta = 1):
"field" has h = 0.3 on every site (no symmetry: vectors of 2**n), "h=0" none (even and odd
sectors, vectors of 2**(n-1)); its odd (magnetisation) mode is the slow one. The machine's load
average is printed before and after: other people's work slows every figure down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

KERNELS = ("random-scan", "sequential", "chromatic")
MODELS = {"field": 0.3, "h=0": 0.0}


def _rss_mib() -> float:
    """Current resident set size (Linux /proc), MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(n: int, model: str, kernel: str, backend: str, repeats: int) -> dict:
    """One cell, in this process: medians over ``repeats`` fresh chains."""
    import numpy as np

    from pbitsim import models
    from pbitsim.diagnostics import ExactChain

    c = models.spin_glass(n, p=0.5, seed=1, field=MODELS[model], beta=1.0)
    # warm up the compiled kernels (cached on disk) on a small model before the RSS baseline
    ExactChain(models.spin_glass(6, seed=1, field=MODELS[model]), kernel, backend=backend)
    base = _rss_mib()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ch = ExactChain(c, kernel, backend=backend)
        t1 = time.perf_counter()
        c1 = time.process_time()
        gaps = ch.sector_gaps() if ch.flip_symmetric else {"all": ch.spectral_gap()}
        t2, c2 = time.perf_counter(), time.process_time()
        # energy up to a constant (centring removes it) from log p; magnetisation from the bits
        energy = -ch._logp / ch.beta
        x = np.arange(ch.N, dtype=np.int64)
        mag = sum(((x >> i) & 1).astype(np.float64) for i in range(n)) * (2.0 / n) - 1.0
        del x
        t3, c3 = time.perf_counter(), time.process_time()
        tau = np.atleast_1d(ch.tau_int(np.column_stack([energy, mag])))
        t4, c4 = time.perf_counter(), time.process_time()
        log = ch.krylov_log
        eig = [e for e in log if e["what"] == "eigenvalues"]
        sol = [e for e in log if e["what"] == "solve"]
        runs.append(
            {
                "build_s": t1 - t0,
                "gap_s": t2 - t1,
                "tau_s": t4 - t3,
                "gap_cpu_s": c2 - c1,
                "tau_cpu_s": c4 - c3,
                "gaps": gaps,
                "tau": tau.tolist(),
                "eig_matvecs": [e["matvecs"] for e in eig],
                "solve_iterations": [e["iterations"] for e in sol],
                "solve_matvecs": [e["matvecs"] for e in sol],
                "backward_error": max((e["backward_error"] for e in sol), default=0.0),
            }
        )
        del ch, energy, mag
    out = dict(runs[0])
    for key in ("build_s", "gap_s", "tau_s", "gap_cpu_s", "tau_cpu_s"):
        out[key] = statistics.median(r[key] for r in runs)
    out.update(n=n, model=model, kernel=kernel, backend=backend, repeats=repeats)
    out["peak_mib"] = _peak_rss_mib() - base
    return out


def run_cell(n, model, kernel, backend, repeats) -> dict:
    cmd = [sys.executable, __file__, "--one", str(n), model, kernel, backend, str(repeats)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        why = (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1]
        return {"n": n, "model": model, "kernel": kernel, "backend": backend, "error": why}
    return json.loads(res.stdout.strip().splitlines()[-1])


def fmt(r: dict) -> str:
    if "error" in r:
        head = f"| {r['n']} | {r['model']} | {r['kernel']} | {r['backend']}"
        return f"{head} | failed: {r['error'][:80]} |"
    gaps = ", ".join(f"{k} {v:.3g}" for k, v in r["gaps"].items())
    its = "/".join(str(i) for i in r.get("eig_matvecs", [])) or "-"
    sol = "/".join(str(i) for i in r.get("solve_iterations", [])) or "-"
    tau = ", ".join(f"{t:.4g}" for t in r["tau"])
    return (
        f"| {r['n']} | {r['model']} | {r['kernel']} | {r['backend']} | {r['build_s']:.2f} | "
        f"{r['gap_s']:.2f} ({r['gap_cpu_s']:.2f}) | {r['tau_s']:.2f} ({r['tau_cpu_s']:.2f}) | "
        f"{its} | {sol} | {r['peak_mib']:.0f} | {gaps} | {tau} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 12, 14, 16 only")
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--kernels", nargs="*", default=list(KERNELS))
    ap.add_argument("--dense-14", action="store_true", help="also the dense random scan at n=14")
    ap.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        n, model, kernel, backend, repeats = a.one
        print(json.dumps(one(int(n), model, kernel, backend, int(repeats))))
        return
    sizes = a.sizes or ([12, 14, 16] if a.quick else [12, 14, 16, 18, 20])
    print(f"CPU: {_cpu()}; {os.cpu_count()} cores; Python {platform.python_version()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(
        "| n | model | kernel | backend | build s | gap s (CPU s) | tau s (CPU s) | "
        "gap matvecs (per sector) | tau iterations (E/m per sector) | peak MiB | gap(s) | "
        "tau_int (E, m) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for n in sizes:
        for model in a.models:
            for kernel in a.kernels:
                reps = 3 if n <= 16 else 1
                rk = run_cell(n, model, kernel, "krylov", reps)
                print(fmt(rk), flush=True)
                dense = n <= 12 or (a.dense_14 and n == 14 and kernel == "random-scan")
                if dense:
                    rd = run_cell(n, model, kernel, "dense", 1)
                    print(fmt(rd), flush=True)
                    if "error" not in rd and "error" not in rk:
                        dg = max(abs(rk["gaps"][s] - rd["gaps"][s]) for s in rk["gaps"])
                        dt = max(abs(x / y - 1) for x, y in zip(rk["tau"], rd["tau"]))
                        print(f"|   | agreement | gap abs {dg:.1e} | tau rel {dt:.1e} |")
    print(f"total {time.perf_counter() - t0:.0f} s; load average after: {os.getloadavg()[0]:.2f}")


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
