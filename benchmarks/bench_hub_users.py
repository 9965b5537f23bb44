"""Ten users starting the getting-started notebook at once: do they all get their items?

Starts the local lab (what ``earthlab hub up`` starts) on the sample federation, on free ports
in a temporary run directory, then:

1. one user alone: starts their server and a kernel, runs the getting-started notebook's
   imports (not timed), then its first federated search cell (timed), and records the item
   count and what each centre answered;
2. ten other users at once: their servers start concurrently (one thread each), each opens a
   kernel and runs the imports, then, all together (a barrier), the same search cell.

Checks that every one of the ten got the same number of items as the user alone, every centre
answering ``ok``, and reports the per-user wall time of the search as ratios to the single
user's (min, median, max), with the machine's load average. Writes the section "Ten users at
once" of docs/benchmarks.md (replacing only that section) and prints it.

Usage::

    python benchmarks/bench_hub_users.py [--users 10] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from _docs import write_section  # noqa: E402
from hub_fixtures import Hub, Kernel, running_lab  # noqa: E402

import lab  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
NOTEBOOK = ROOT / "docs" / "notebooks" / "01-getting-started.ipynb"
SECTION = "## Ten users at once"
REPORT = (
    "\nimport json as _json\n"
    "print(_json.dumps({'items': len(result.items), "
    "'federation': {k: str(getattr(v, 'status', v)) for k, v in result.federation.items()}}))"
)


def notebook_cells() -> tuple[str, str]:
    """The getting-started notebook's imports cell and its first search cell."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    imports = next(c for c in code if c.startswith("import") and "import lab" in c)
    search = next(c for c in code if ".search(" in c)
    return imports, search


class User:
    """One hub user with a server and a kernel ready to run the search cell."""

    def __init__(self, hub: Hub, name: str, imports: str):
        hub.create_user(name)
        server = hub.start_server(name, timeout=600)
        self.name = name
        self.kernel = Kernel(server, hub.token(name, [f"access:servers!user={name}"]))
        output = self.kernel.execute(imports, timeout=600)
        if output.error:
            raise RuntimeError(f"{name}: imports failed: {output.error}")

    def search(self, cell: str) -> tuple[float, dict[str, Any]]:
        """Run the search cell; return its wall time and what it found."""
        start = time.perf_counter()
        output = self.kernel.execute(cell + REPORT, timeout=600)
        elapsed = time.perf_counter() - start
        if output.error:
            raise RuntimeError(f"{self.name}: search failed: {output.error}")
        return elapsed, output.json_lines()[-1]


def run(users: int) -> dict[str, Any]:
    """Measure one user alone, then ``users`` at once."""
    imports, search = notebook_cells()
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample"
        lab.make_sample(sample)
        with running_lab(sample / "centres.yaml", Path(tmp) / "run") as deployment:
            hub = Hub(deployment)
            solo = User(hub, "solo", imports)
            solo_time, solo_found = solo.search(search)
            solo.kernel.close()
            started = time.perf_counter()
            with ThreadPoolExecutor(users) as pool:
                crowd = list(pool.map(lambda i: User(hub, f"user{i:02d}", imports), range(users)))
            ready_s = time.perf_counter() - started
            barrier = threading.Barrier(users)
            load_before = os.getloadavg()

            def together(user: User) -> tuple[float, dict[str, Any]]:
                barrier.wait(timeout=600)
                return user.search(search)

            with ThreadPoolExecutor(users) as pool:
                results = list(pool.map(together, crowd))
            load_after = os.getloadavg()
            for user in crowd:
                user.kernel.close()
    times = [t for t, _ in results]
    return {
        "users": users,
        "solo_s": solo_time,
        "solo": solo_found,
        "ready_s": ready_s,
        "times": times,
        "found": [f for _, f in results],
        "load": (load_before, load_after),
    }


def check(outcome: dict[str, Any]) -> None:
    """Every user got the single user's items, every centre answering."""
    solo = outcome["solo"]
    assert solo["items"] > 0, solo
    for i, found in enumerate(outcome["found"]):
        assert found["items"] == solo["items"], (i, found, solo)
        assert found["federation"] == solo["federation"], (i, found, solo)


def section(outcome: dict[str, Any]) -> str:
    """The Markdown section for docs/benchmarks.md."""
    solo, times = outcome["solo_s"], outcome["times"]
    ratios = [t / solo for t in times]
    (b1, b5, _), (a1, a5, _) = outcome["load"]
    federation = ", ".join(f"{k} {v}" for k, v in sorted(outcome["solo"]["federation"].items()))
    return "\n".join(
        [
            SECTION,
            "",
            f"`benchmarks/bench_hub_users.py`, {time.strftime('%Y-%m-%d')}: the local lab "
            f"on the sample federation, on one machine ({platform.machine()}, "
            f"{os.cpu_count()} cores, shared with other work, Python "
            f"{platform.python_version()}). One user runs the getting-started notebook's "
            f"imports and then its first search cell alone; then {outcome['users']} other "
            "users start their servers at once, open a kernel, run the imports, and run the "
            "same search cell together. Times are the search cell's wall time, measured "
            "once.",
            "",
            "| | value |",
            "|---|---|",
            f"| one user alone | {solo:.2f} s, {outcome['solo']['items']} items ({federation}) |",
            f"| users at once | {outcome['users']}, each got {outcome['solo']['items']} items, "
            "each centre answering as for the user alone |",
            f"| search time / alone: min | {min(ratios):.2f} |",
            f"| search time / alone: median | {statistics.median(ratios):.2f} |",
            f"| search time / alone: max | {max(ratios):.2f} |",
            f"| {outcome['users']} servers and kernels ready (concurrently) "
            f"| {outcome['ready_s']:.0f} s |",
            f"| load average (1 min, 5 min) before / after the searches "
            f"| {b1:.2f}, {b5:.2f} / {a1:.2f}, {a5:.2f} |",
            "",
            "On 2 cores the ten searches share the CPU with the ten kernels, the hub, the "
            "front and the catalogue servers: the ratios say how much a crowd slows one "
            "search, not a capacity.",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    outcome = run(args.users)
    print(json.dumps({k: v for k, v in outcome.items() if k != "found"}, default=str))
    check(outcome)
    text = section(outcome)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
        print(f"written to {DOCS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
