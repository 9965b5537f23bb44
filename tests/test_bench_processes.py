"""benchmarks/bench_processes.py runs, and its checks hold, on a few jobs (its exits are the test).

The benchmark stops with an error when a cube-build job or a direct build fails, or when one of
the concurrent jobs does not succeed; the report's figures are checked for what can be known
without timing: every job succeeded, and no more than the service's 2 ran at once.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_processes.py"


@pytest.mark.integration
@pytest.mark.slow
def test_bench_processes_checks_hold_on_a_few_jobs():
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--repeat",
            "1",
            "--jobs",
            "6",
            "--users",
            "3",
            "--pause",
            "1",
            "--no-write",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    crowd = re.search(r"(\d+) of (\d+) succeeded; at most (\d+) ran at once", done.stdout)
    assert crowd is not None, done.stdout
    assert crowd.group(1) == crowd.group(2) == "6"
    assert 1 <= int(crowd.group(3)) <= 2
    assert re.search(r"takes \*\*\d+\.\d\dx\*\* the same build called from a notebook", done.stdout)
    assert re.search(r"theia, take \*\*\d+\.\d\dx\*\* the same maps", done.stdout)
