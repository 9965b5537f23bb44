"""Cube builds: peak memory and throughput with 16 and 64 dates, against a plain ``to_zarr``.

For each sample federation (16 dates, 64 dates), in a fresh Python process per measurement:

1. ``datacubes.build("thau-lagoon-sample")``: the shipped sample spec (800 x 800 pixels at
   20 m, 7 reflectance bands + SCL, cloud mask, chunks 4 x 400 x 400 in shards 4 x 800 x 800), from the COGs;
2. ``xr.Dataset.to_zarr`` of the same cube already in memory (read back from the build, then
   written with the same chunks and codecs): the cost of writing alone.

Peak RSS is the child's own ``ru_maxrss``; throughput is MB/s of values written (uncompressed,
the same bytes for both). Goals: peak RSS of the 64-date build within 1.3x of the 16-date one,
build throughput at least half the plain write's.

Usage::

    python benchmarks/bench_build.py [--sample16 DIR] [--sample64 DIR] [--workers 2]
        [--repeat 2] [--write-docs]

Missing samples are generated into a temporary directory (about 30 s and 2.5 min).
``--write-docs`` replaces the "Builds" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"


def child_build(centres: str, target: str, workers: int) -> dict:
    import resource

    import zarr  # noqa: F401  (imported before the clock, as in the plain write's process)

    import datacubes

    before = resource.getrusage(resource.RUSAGE_SELF)
    report = datacubes.build("thau-lagoon-sample", target=target, centres=centres, workers=workers)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss * 1024
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    return {
        "seconds": report.seconds,
        "bytes": report.bytes_written,
        "steps": report.steps,
        "regions": report.regions_written,
        "peak_rss": peak,
        "cpu": cpu,
    }


def child_search(centres: str) -> dict:
    """CPU and wall time of the build's catalogue search alone, in a fresh process."""
    import resource

    import datacubes
    from datacubes._grid import lonlat_bbox, spec_geobox
    from datacubes._steps import search_source

    spec = datacubes.read_spec("thau-lagoon-sample")
    bbox = lonlat_bbox(spec_geobox(spec.grid))
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    found = search_source(spec, centres, bbox)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": seconds, "cpu": cpu, "items": len(found.items)}


def child_plain(source: str, target: str) -> dict:
    import resource
    import warnings

    import xarray as xr

    cube = xr.open_zarr(source, consolidated=True).load()
    encoding = {
        name: {"chunks": var.encoding["chunks"], "shards": var.encoding.get("shards")}
        for name, var in cube.data_vars.items()
    }
    for var in cube.variables.values():
        var.encoding = {}
    nbytes = sum(var.nbytes for var in cube.data_vars.values())
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cube.to_zarr(target, mode="w", encoding=encoding, zarr_format=3, consolidated=True)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": seconds, "bytes": nbytes, "peak_rss": usage.ru_maxrss * 1024, "cpu": cpu}


def run_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def ensure_sample(path: Path | None, n_dates: int, tmp: Path) -> Path:
    if path is not None and (path / "centres.yaml").is_file():
        return path
    import lab

    path = path or tmp / f"sample{n_dates}"
    print(f"generating the {n_dates}-date sample into {path} ...", flush=True)
    lab.make_sample(path, n_dates=n_dates)
    return path


def measure(sample: Path, workers: int, repeat: int, tmp: Path) -> dict:
    builds, plains, searches = [], [], []
    for run in range(repeat):
        target = tmp / f"build-{sample.name}-{run}" / "thau-lagoon-sample.zarr"
        builds.append(run_child("build", str(sample / "centres.yaml"), str(target), str(workers)))
        plains.append(run_child("plain", str(target), str(tmp / f"plain-{sample.name}-{run}.zarr")))
        searches.append(run_child("search", str(sample / "centres.yaml")))
    best_build = min(builds, key=lambda r: r["seconds"])
    best_plain = min(plains, key=lambda r: r["seconds"])
    return {
        "steps": best_build["steps"],
        "regions": best_build["regions"],
        "megabytes": best_build["bytes"] / 1e6,
        "build_s": best_build["seconds"],
        "build_mbs": best_build["bytes"] / 1e6 / best_build["seconds"],
        "build_rss_mb": max(r["peak_rss"] for r in builds) / 1e6,
        "plain_s": best_plain["seconds"],
        "plain_mbs": best_plain["bytes"] / 1e6 / best_plain["seconds"],
        "plain_rss_mb": max(r["peak_rss"] for r in plains) / 1e6,
        "build_cpu": best_build["cpu"],
        "plain_cpu": best_plain["cpu"],
        "search_cpu": min(r["cpu"] for r in searches),
    }


def section(results: dict[int, dict], workers: int, repeat: int, load: tuple[float, float]) -> str:
    r16, r64 = results[16], results[64]
    rss_ratio = r64["build_rss_mb"] / r16["build_rss_mb"]
    lines = [
        "## Builds",
        "",
        '`python benchmarks/bench_build.py --write-docs`: `datacubes.build("thau-lagoon-sample")`'
        " (800 x 800 pixels at 20 m, 7 reflectance bands + SCL, cloud mask, chunks 4 x 400 x 400 in shards 4 x 800 x 800,"
        f" {workers} workers) on the sample federation with 16 and 64 dates, each build in a fresh"
        " process; the plain write is `xr.Dataset.to_zarr` of the same cube already in memory, same"
        f" chunks and codecs. Best of {repeat} runs (peak RSS: the highest). Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores shared with other work, Python "
        f"{platform.python_version()}; load average {load[0]:.1f} at start, {load[1]:.1f} at end.",
        "",
        "| dates | regions | MB of values | build s | build MB/s | build CPU s | build peak RSS MB "
        "| of which catalogue search CPU s | plain write s | plain MB/s | plain CPU s "
        "| build / plain throughput (wall) | (CPU) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in (16, 64):
        r = results[n]
        lines.append(
            f"| {r['steps']} | {r['regions']} | {r['megabytes']:.0f} | {r['build_s']:.2f} | "
            f"{r['build_mbs']:.0f} | {r['build_cpu']:.1f} | {r['build_rss_mb']:.0f} | "
            f"{r['search_cpu']:.2f} | {r['plain_s']:.2f} | {r['plain_mbs']:.0f} | {r['plain_cpu']:.1f} | "
            f"{r['build_mbs'] / r['plain_mbs']:.2f} | {r['plain_cpu'] / r['build_cpu']:.2f} |"
        )
    lines += [
        "",
        f"Peak RSS 64 / 16 dates: {rss_ratio:.2f} (goal <= 1.3). Build / plain write throughput:"
        f" {r16['build_mbs'] / r16['plain_mbs']:.2f} and {r64['build_mbs'] / r64['plain_mbs']:.2f}"
        f" in wall time, {r16['plain_cpu'] / r16['build_cpu']:.2f} and"
        f" {r64['plain_cpu'] / r64['build_cpu']:.2f} in CPU time (goal >= 0.5). The build time"
        " includes the catalogue search, the planning of the time steps, the template, reading"
        " and decompressing the COGs, scaling and masking, the region writes and the metadata;"
        " the plain write only encodes and writes. Memory holds one region per worker whatever"
        " the number of dates. On a shared machine wall times are noisy; CPU times less so.",
        "",
        "Where a build's CPU goes (per-phase CPU of a 16-date build in a fresh process, regions"
        " in one thread): encoding and writing the regions costs what the plain write costs"
        " (about 0.35 s per region of 4 x 800 x 800 x 8 bands, all in zarr's codecs); reading a"
        " region costs about 0.19 s, of which GDAL opening and decompressing the 32 COGs takes"
        " 0.12-0.14 s and the scaling with the cloud mask 0.03 s. The sample's COGs sit on the"
        " cube grid, so a region pastes window reads of them straight into its arrays"
        " (`datacubes._paste`, which gives exactly odc-stac's dataset: tests/test_paste.py);"
        " through odc-stac, which plans a reprojection, opens a GDAL environment and fills a"
        " temporary array per asset, a region cost 0.22-0.23 s. The fixed part is about 0.25 s of"
        " wall time: the catalogue search (the column above: the sample's stac-geoparquet files"
        " are small, so they are read whole without starting DuckDB, whose client alone cost"
        " 0.6 s of CPU), planning the time steps (a lazy odc-stac load, 0.05-0.08 s), the"
        " template (0.07 s), the manifest and the STAC metadata. It weighs most with few dates."
        " Both processes have zarr imported before their clock starts (the plain write's opened"
        " the store with it); earlier versions of this table counted zarr's import (0.16 s)"
        " in the build's time. Writing the empty store while the first regions are read was"
        " tried: no gain, since both cores are already busy reading.",
        "",
    ]
    return "\n".join(lines)


def wrap(text: str, width: int = 95) -> str:
    """Wrap the prose paragraphs of a Markdown section (tables and headings kept as they are)."""
    import textwrap

    out = []
    for line in text.split("\n"):
        if line.startswith(("|", "#")) or not line:
            out.append(line)
        else:
            out.append(textwrap.fill(line, width=width, break_on_hyphens=False))
    return "\n".join(out)


def write_docs(text: str) -> None:
    text = wrap(text).rstrip("\n") + "\n\n"
    current = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Builds\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    DOCS.write_text(updated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample16", type=Path)
    parser.add_argument("--sample64", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp_name:
        tmp = Path(tmp_name)
        samples = {
            16: ensure_sample(args.sample16, 16, tmp),
            64: ensure_sample(args.sample64, 64, tmp),
        }
        results = {n: measure(path, args.workers, args.repeat, tmp) for n, path in samples.items()}
    text = section(results, args.workers, args.repeat, (load_start, os.getloadavg()[0]))
    print(text)
    if args.write_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, *rest = sys.argv[2:]
        if kind == "build":
            result = child_build(rest[0], rest[1], int(rest[2]))
        elif kind == "search":
            result = child_search(rest[0])
        else:
            result = child_plain(rest[0], rest[1])
        print(json.dumps(result))
        raise SystemExit(0)
    raise SystemExit(main())
