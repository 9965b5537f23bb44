"""Run every benchmark on one sample federation and print their tables.

Usage::

    python benchmarks/run_all.py [SAMPLE_DIR]

Each ``bench_*.py`` runs in its own process, one after the other (never in parallel: they
share 2 cores). Copy the tables into docs/benchmarks.md with the date and machine.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Benchmarks that take the sample directory as their first argument.
ON_SAMPLE = ("bench_load.py", "bench_matchup.py")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tmp) / "sample"
        if not (sample / "centres.yaml").is_file():
            import lab

            lab.make_sample(sample)
        failed = []
        for script in sorted(HERE.glob("bench_*.py")):
            args = [sys.executable, str(script)]
            if script.name in ON_SAMPLE:
                args.append(str(sample))
            print(f"\n## {script.name}\n", flush=True)
            if subprocess.run(args, check=False).returncode != 0:
                failed.append(script.name)
        if failed:
            print(f"\nfailed: {', '.join(failed)}")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
