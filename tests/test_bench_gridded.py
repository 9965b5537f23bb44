"""benchmarks/bench_gridded.py runs, and its checks hold, on a few days (its asserts are the test).

The benchmark compares a reference-opened cube with ``xarray.open_mfdataset`` pixel by pixel
and asserts that a station matchup reads exactly the chunks under the stations; a change of
``datacubes.load_gridded`` or ``write_references`` that breaks either fails here, not only
when someone runs the benchmarks.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_gridded.py"


def test_bench_gridded_checks_hold_on_six_days():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--days", "6", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "identical values (every pixel, every day): True" in done.stdout
    reads = re.search(r"(\d+) chunk reads, exactly the (\d+) chunks per day", done.stdout)
    assert reads is not None, done.stdout
    assert int(reads.group(1)) == 6 * int(reads.group(2))
    assert int(reads.group(2)) < 24  # fewer than a day's 4 x 6 chunks
