"""pgstac centres: a large catalogue searched through the lab, and a federation of six.

What most STAC data centres run: stac-fastapi-pgstac on PostgreSQL + PostGIS + pgstac, started
by the lab's own code (``lab_server.deploy._pgstac``, as ``earthlab hub up --catalogue pgstac``
and ``tests/pgstac_server.py`` do), on loopback.

1. **One large centre.** ``--items`` synthetic Sentinel-2-like items (default 1,000,000; 10 km
   boxes over mainland France, 2015-2024) written as ndjson and bulk-loaded with pypgstac's
   loader (load time reported), served by one stac-fastapi-pgstac; the lab's federated search
   (``lab.catalog().search``, through pystac-client) by bbox + datetime, by bbox + datetime with
   ``limit``, and by datetime with ``limit``. Goal: under 1 s. Median of ``--repeat`` runs.
2. **Six pgstac centres, one slowed by 500 ms** (the front's ``delay``, as in
   ``benchmarks/bench_federation.py``, 250 items each): federated search time against the
   slowest centre searched alone. Goal: ratio <= 1.2.

Needs the Debian packages ``postgresql`` and ``postgresql-15-postgis-3`` (``make
system-packages``). Not run by ``make test``.

Usage::

    python benchmarks/bench_pgstac.py [--items 1000000] [--repeat 5]
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
import orjson

import lab

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_federation import QUERY, SLOW_S, timed, write_federation  # noqa: E402
from postgres_server import start_postgres  # noqa: E402
from stac_servers import stac_servers  # noqa: E402

from lab_server.deploy._pgstac import PgstacCluster, api_command  # noqa: E402
from lab_server.deploy._procs import free_port, http_ready, start, stop, wait_until  # noqa: E402

IP = "127.0.0.1"
FRANCE = (-4.5, 42.5, 7.5, 50.5)  # west, south, east, north of the items' lower-left corners
START = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
DAYS = 3652
THAU = [3.45, 43.30, 3.75, 43.50]
BIG_QUERIES = {
    "bbox + one month": {"bbox": THAU, "datetime": "2022-06-01/2022-06-30"},
    "bbox + one year": {"bbox": THAU, "datetime": "2022-01-01/2022-12-31"},
    "bbox + one year, limit 10": {"bbox": THAU, "datetime": "2022-01-01/2022-12-31", "limit": 10},
    "one day (all of France)": {"datetime": "2022-06-15"},
    "one month, limit 100": {"datetime": "2022-06-01/2022-06-30", "limit": 100},
    "bbox, limit 100": {"bbox": THAU, "limit": 100},
}


def write_ndjson(path: Path, count: int, seed: int = 7, chunk: int = 100_000) -> None:
    """``count`` items as ndjson, written in chunks (numpy draws, orjson lines)."""
    rng = np.random.default_rng(seed)
    west, south, east, north = FRANCE
    with path.open("wb") as out:
        for first in range(0, count, chunk):
            n = min(chunk, count - first)
            lons = west + (east - west) * rng.random(n)
            lats = south + (north - south) * rng.random(n)
            seconds = rng.integers(0, DAYS * 86400, n)
            clouds = rng.uniform(0, 100, n)
            lines = []
            for k in range(n):
                lon, lat = round(float(lons[k]), 5), round(float(lats[k]), 5)
                box = [lon, lat, round(lon + 0.12, 5), round(lat + 0.09, 5)]
                ring = [
                    [box[0], box[1]],
                    [box[2], box[1]],
                    [box[2], box[3]],
                    [box[0], box[3]],
                    [box[0], box[1]],
                ]
                when = START + dt.timedelta(seconds=int(seconds[k]))
                number = first + k
                lines.append(
                    orjson.dumps(
                        {
                            "type": "Feature",
                            "stac_version": "1.1.0",
                            "id": f"big-{number:07d}",
                            "collection": "sentinel-2-l2a",
                            "geometry": {"type": "Polygon", "coordinates": [ring]},
                            "bbox": box,
                            "properties": {
                                "datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                "eo:cloud_cover": round(float(clouds[k]), 2),
                            },
                            "links": [],
                            "assets": {
                                "red": {
                                    "href": f"https://data.example/big/{number:07d}/red.tif",
                                    "type": "image/tiff; application=geotiff",
                                    "roles": ["data"],
                                }
                            },
                        }
                    )
                )
            out.write(b"\n".join(lines) + b"\n")


def big_collection() -> dict:
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": "sentinel-2-l2a",
        "description": "Synthetic Sentinel-2-like items (benchmark)",
        "license": "other",
        "links": [],
        "extent": {
            "spatial": {"bbox": [[FRANCE[0], FRANCE[1], FRANCE[2] + 0.12, FRANCE[3] + 0.09]]},
            "temporal": {"interval": [["2015-01-01T00:00:00Z", "2024-12-31T23:59:59Z"]]},
        },
    }


def bench_big(count: int, repeat: int, work: Path) -> dict:
    logs = work / "logs"
    logs.mkdir(parents=True)
    started = time.perf_counter()
    ndjson = work / "items.ndjson"
    write_ndjson(ndjson, count)
    written = time.perf_counter() - started
    cluster = PgstacCluster.create(work / "pgstac", free_port(), IP)
    procs = []
    try:
        began = time.perf_counter()
        postgres = start_postgres(cluster, logs / "postgres.log")
        procs.append(postgres)
        wait_until(postgres, cluster.ready(), 120)
        cluster.migrate_template()
        database = cluster.prepare("big")
        server_start = time.perf_counter() - began
        began = time.perf_counter()
        cluster.load(database, [big_collection()], str(ndjson))
        loaded = time.perf_counter() - began
        import psycopg

        began = time.perf_counter()
        with psycopg.connect(cluster.dsn(database), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE pgstac.items")
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        analysed = time.perf_counter() - began
        port = free_port()
        api = start(
            "stac-big",
            api_command(sys.executable, cluster, database, IP, port),
            logs / "stac-big.log",
            {"PATH": str(Path(sys.executable).parent), **cluster.client_env()},
            work,
        )
        procs.append(api)
        wait_until(api, http_ready(f"http://{IP}:{port}/"), 120)
        centres = work / "centres.yaml"
        centres.write_text(
            "version: 1\ncentres:\n  - name: big\n    catalog: {kind: stac-api, href: "
            f"'http://{IP}:{port}/', timeout: 120}}\n",
            encoding="utf-8",
        )
        federation = lab.catalog(centres)
        searches = {}
        for name, query in BIG_QUERIES.items():
            first = federation.search(**query)  # warm up: imports, connection, plan cache
            assert first.federation["big"].status == "ok", first.describe()
            median, low, high, result = timed(lambda q=query: federation.search(**q), repeat)
            searches[name] = {"found": len(result), "median": median, "min": low, "max": high}
    finally:
        for proc in reversed(procs):
            stop(proc, timeout=30)
        cluster.remove()
    return {
        "count": count,
        "written": written,
        "server_start": server_start,
        "loaded": loaded,
        "analysed": analysed,
        "db_mb": (size[0] if size else 0) / 1e6,
        "searches": searches,
    }


def bench_six(repeat: int, work: Path) -> dict:
    n = 6
    source = write_federation(work / "fed6", n)
    delays = {f"c{k}": SLOW_S if k == 1 else 0.0 for k in range(1, n + 1)}
    began = time.perf_counter()
    with stac_servers(source, work / "live6", delays=delays, backend="pgstac", timeout=180) as live:
        start_s = time.perf_counter() - began
        federation = lab.catalog(live.centres_file)
        federation.search(**QUERY)  # warm up
        alone = {
            name: timed(lambda c=name: federation.search(**QUERY, centres=[c]), repeat)[0]
            for name in federation.centres
        }
        parallel = timed(lambda: federation.search(**QUERY), repeat)
        timings = dict(live.timings)
    result = parallel[3]
    assert all(r.status == "ok" for r in result.federation.values()), result.describe()
    slowest = max(alone.values())
    return {
        "start": start_s,
        "timings": timings,
        "items": len(result),
        "slowest": slowest,
        "fast_median": statistics.median(v for k, v in alone.items() if k != "c1"),
        "parallel": parallel,
        "ratio": parallel[0] / slowest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-big", action="store_true", help="only the six centres")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-pgstac-") as tmp:
        work = Path(tmp)
        six = bench_six(args.repeat, work)
        big = None if args.skip_big else bench_big(args.items, args.repeat, work / "big")
    load_end = os.getloadavg()[0]
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {load_start:.1f} at start, "
        f"{load_end:.1f} at end; median of {args.repeat} runs (min-max).\n"
    )
    p = six["parallel"]
    t = six["timings"]
    print(
        f"Six pgstac centres (250 items each, c1 slowed by {1000 * SLOW_S:.0f} ms an answer), "
        f"started in {six['start']:.1f} s (PostgreSQL + pgstac migration "
        f"{t.get('postgres', 0):.1f} s, loading {t.get('load', 0):.1f} s, APIs ready "
        f"{t.get('apis', 0):.1f} s)\n"
    )
    print(
        "| items found | slowest centre alone s | other centres alone s (median) | "
        "federated s | federated / slowest |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {six['items']} | {six['slowest']:.3f} | {six['fast_median']:.3f} | "
        f"{p[0]:.3f} ({p[1]:.3f}-{p[2]:.3f}) | {six['ratio']:.2f} |"
    )
    if big is None:
        return
    print(
        f"\nOne pgstac centre, {big['count']:,} items: ndjson written in {big['written']:.0f} s; "
        f"PostgreSQL started and pgstac migrated in {big['server_start']:.1f} s; pypgstac "
        f"load {big['loaded']:.0f} s ({big['count'] / big['loaded']:,.0f} items/s), VACUUM "
        f"ANALYZE {big['analysed']:.0f} s; database {big['db_mb']:,.0f} MB\n"
    )
    print("| search through the lab | items found | s (min-max) |")
    print("|---|---|---|")
    for name, s in big["searches"].items():
        print(f"| {name} | {s['found']} | {s['median']:.3f} ({s['min']:.3f}-{s['max']:.3f}) |")


if __name__ == "__main__":
    main()
