"""Latency of a federated search against searching the centres one after another.

Builds N synthetic centres (N = 3 and 6; 250 Sentinel-2-like items each, stac-geoparquet),
serves each as a live STAC API on loopback the way the lab does (``rustac serve`` behind the
lab's HTTP front, started by ``tests/stac_servers.py``), and slows one centre down by 500 ms
per answer (the front's ``delay``). Two network settings: loopback as is (the other centres
answer in milliseconds), and 100 ms added to every answer of every centre (a remote API's
round trip; the slow centre then takes 600 ms an answer). For each N, median of ``--repeat``
runs of:

- each centre searched alone (the slowest of them is the floor a federated search can reach);
- the federated search (``lab.catalog().search``: one thread per centre);
- the same centres searched one after another (``max_workers=1``).

The goal is federated / slowest single centre <= 1.2. A search is one landing page and one
page of results (page size 100), so the slowed centre costs about 2 x 500 ms.

Then the search of a 100 000-item stac-geoparquet catalogue by bbox and datetime
(``lab.catalog().search`` through the stac-geoparquet adapter; goal under 1 s).

Usage::

    python benchmarks/bench_federation.py [--repeat 5] [--items 100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rustac

import lab

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from stac_servers import stac_servers  # noqa: E402

SLOW_S = 0.5
PER_CENTRE = 250
QUERY = {
    "collections": ["sentinel-2-l2a"],
    "bbox": [3.50, 43.30, 3.75, 43.50],
    "datetime": "2022-03-01/2022-08-31",
}


def synthetic_items(prefix: str, count: int, seed: int) -> list[dict]:
    """Sentinel-2-like items (10 km boxes) around the lagoon, spread over 2022."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2022, 1, 1, 10, 40, tzinfo=dt.UTC)
    items = []
    for i in range(count):
        lon, lat = 3.0 + 1.4 * rng.random(), 43.0 + 1.0 * rng.random()
        when = start + dt.timedelta(days=float(rng.integers(0, 365)), minutes=float(i % 60))
        ring = [
            [lon, lat],
            [lon + 0.12, lat],
            [lon + 0.12, lat + 0.09],
            [lon, lat + 0.09],
            [lon, lat],
        ]
        items.append(
            {
                "type": "Feature",
                "stac_version": "1.1.0",
                "id": f"{prefix}-{i:06d}",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "bbox": [lon, lat, lon + 0.12, lat + 0.09],
                "properties": {
                    "datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "eo:cloud_cover": float(rng.uniform(0, 100)),
                },
                "links": [],
                "assets": {"red": {"href": f"{prefix}/{i:06d}/red.tif", "roles": ["data"]}},
                "collection": "sentinel-2-l2a",
            }
        )
    return items


def write_federation(root: Path, n: int) -> Path:
    """N centres ``c1..cN`` (stac-geoparquet), the first one slowed later; their centres file."""
    lines = ["version: 1", "centres:"]
    for k in range(1, n + 1):
        directory = root / f"c{k}"
        directory.mkdir(parents=True)
        rustac.write_sync(str(directory / "items.parquet"), synthetic_items(f"c{k}", PER_CENTRE, k))
        lines += [
            f"  - name: c{k}",
            "    catalog: {kind: stac-geoparquet, href: " + f"c{k}/items.parquet" + "}",
        ]
    path = root / "centres.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def timed(fn, repeat: int) -> tuple[float, float, float, object]:
    """Median, min and max wall seconds of ``fn()`` over ``repeat`` runs, and its last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), max(times), result


def bench_centres(n: int, repeat: int, work: Path, base: float) -> dict:
    source = write_federation(work / f"fed{n}-{base}", n)
    delays = {f"c{k}": base + (SLOW_S if k == 1 else 0.0) for k in range(1, n + 1)}
    with stac_servers(source, work / f"live{n}-{base}", delays=delays) as live:
        federation = lab.catalog(live.centres_file)
        federation.search(**QUERY)  # warm up: imports, connections
        alone = {}
        for name in federation.centres:
            alone[name] = timed(lambda c=name: federation.search(**QUERY, centres=[c]), repeat)[0]
        parallel = timed(lambda: federation.search(**QUERY), repeat)
        sequential = timed(
            lambda: lab.catalog(live.centres_file, max_workers=1).search(**QUERY), repeat
        )
    result = parallel[3]
    assert all(r.status == "ok" for r in result.federation.values()), result.describe()
    assert len(sequential[3]) == len(result)
    slowest = max(alone.values())
    return {
        "n": n,
        "base": base,
        "items": len(result),
        "slowest": slowest,
        "fast_median": statistics.median(v for k, v in alone.items() if k != "c1"),
        "parallel": parallel,
        "sequential": sequential,
        "ratio": parallel[0] / slowest,
        "speedup": sequential[0] / parallel[0],
    }


def bench_geoparquet(count: int, repeat: int, work: Path) -> dict:
    directory = work / "big"
    directory.mkdir()
    started = time.perf_counter()
    rustac.write_sync(str(directory / "items.parquet"), synthetic_items("big", count, 99))
    written = time.perf_counter() - started
    (directory / "centres.yaml").write_text(
        "version: 1\ncentres:\n  - name: big\n"
        "    catalog: {kind: stac-geoparquet, href: items.parquet}\n",
        encoding="utf-8",
    )
    federation = lab.catalog(directory / "centres.yaml")
    query = {"bbox": [3.55, 43.35, 3.65, 43.45], "datetime": "2022-06-01/2022-06-30"}
    federation.search(**query)  # warm up: DuckDB client and extensions
    median, low, high, result = timed(lambda: federation.search(**query), repeat)
    size = (directory / "items.parquet").stat().st_size
    return {
        "count": count,
        "written": written,
        "mb": size / 1e6,
        "found": len(result),
        "median": median,
        "min": low,
        "max": high,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-federation-") as tmp:
        work = Path(tmp)
        rows = [bench_centres(n, args.repeat, work, base) for base in (0.0, 0.1) for n in (3, 6)]
        big = bench_geoparquet(args.items, args.repeat, work)
    load_end = os.getloadavg()[0]
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {load_start:.1f} at start, "
        f"{load_end:.1f} at end; median of {args.repeat} runs (min-max).\n"
    )
    print(
        "| added to every answer | centres | items found | slowest centre alone s | other "
        "centres alone s (median) | federated s | one after another s | federated / slowest "
        "| one after another / federated |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p, s = r["parallel"], r["sequential"]
        print(
            f"| {1000 * r['base']:.0f} ms | {r['n']} | {r['items']} | {r['slowest']:.3f} | "
            f"{r['fast_median']:.3f} | {p[0]:.3f} ({p[1]:.3f}-{p[2]:.3f}) | "
            f"{s[0]:.3f} ({s[1]:.3f}-{s[2]:.3f}) | {r['ratio']:.2f} | {r['speedup']:.2f} |"
        )
    print(
        f"\nstac-geoparquet, {big['count']} items ({big['mb']:.1f} MB, written in "
        f"{big['written']:.1f} s): bbox + datetime search finds {big['found']} items in "
        f"{big['median']:.3f} s (min {big['min']:.3f}, max {big['max']:.3f})"
    )


if __name__ == "__main__":
    main()
