"""The classroom load bench runs end to end with a few students, each sampling their own run (a benchmark run in
CI, not a timed assertion: the figures it prints depend on the machine)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # starts the app and a training job: ~1 minute on a quiet 2-core machine
def test_three_students_sampling_their_own_runs_while_a_job_trains_get_no_errors():
    bench = subprocess.run(
        [sys.executable, "bench/classroom_load.py", "--sessions", "3", "--own-models", "--timeout", "600"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    out = bench.stdout + bench.stderr
    assert bench.returncode == 0 and "errors: 0" in out, out[-3000:]
    assert "generate 50 tokens     n=  3" in out  # every student generated
    print(out)
