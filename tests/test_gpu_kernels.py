"""gpu-chromatic and gpu-hardware against the CPU, bit for bit (pbitsim.sim.gpu_kernels).

The cases live in ``tests/gpu_cases.py`` and run in a subprocess: Numba's CUDA simulator is
switched on for a whole process, and only before ``numba.cuda`` is first imported. The
``simulator`` run works on every machine (CI has no GPU); the ``device`` run takes the same cases
to a CUDA GPU and is skipped, with the reason shown, where there is none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gpu_cases
import pytest

HERE = Path(__file__).resolve().parent


def _device_problem() -> str | None:
    """Why the cases cannot run on a GPU here, or None."""
    if not Path("/dev/nvidiactl").exists():
        return "no NVIDIA GPU on this machine (/dev/nvidiactl is missing)"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    code = "from pbitsim.sim.gpu import gpu_problem; print(gpu_problem() or '')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return out.stdout.strip() or (out.stderr.strip()[-300:] if out.returncode else None)


@pytest.fixture(scope="module", params=["simulator", "device"])
def results(request) -> dict:
    """{case: {"ok", "detail", "seconds"}} of one run of every case."""
    env = dict(os.environ)
    if request.param == "simulator":
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    else:
        env.pop("NUMBA_ENABLE_CUDASIM", None)
        problem = _device_problem()
        if problem:
            pytest.skip(f"device run: {problem}; the simulator run covers these cases")
    proc = subprocess.run(
        [sys.executable, str(HERE / "gpu_cases.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = {}
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        found[r["case"]] = r
    return found


@pytest.mark.parametrize("case", list(gpu_cases.CASES))
def test_gpu_matches_cpu(results, case):
    r = results.get(case)
    assert r is not None, f"case {case} did not report"
    assert r["ok"], r["detail"]
