"""Throughput of ``datacubes.load`` against plain rasterio reads on the sample federation.

Reads every reflectance band of every date of the sample cube twice:

1. ``datacubes.load(items, bands).compute()`` with the default chunking (Dask threads);
2. rasterio: open each COG, read its whole window into a numpy array, apply the item's
   ``raster:bands`` scale/offset and nodata -> NaN (one thread, no Dask).

Throughput is MB/s of float32 output; the ratio is datacubes / rasterio (goal >= 0.7).
Both results are compared pixel by pixel before timing.

Usage::

    python benchmarks/bench_load.py [SAMPLE_DIR] [--repeat 3]

Without SAMPLE_DIR a sample federation is generated into a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import pystac
import rasterio
from rasterio.windows import Window

import datacubes

BANDS = ["blue", "green", "red", "rededge1", "nir", "nir08", "swir16"]


def sample_items(sample_dir: Path) -> list[pystac.Item]:
    catalog = pystac.Catalog.from_file(str(sample_dir / "theia" / "catalog.json"))
    # the Sen2Cor-like scenes (theia also publishes them as MAJA products)
    items = [i for i in catalog.get_items(recursive=True) if i.collection_id == "sentinel-2-l2a"]
    return sorted(items, key=lambda item: (item.datetime, item.id))


def read_rasterio(items: list[pystac.Item]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for band in BANDS:
        first = items[0].assets[band]
        height, width = first.extra_fields.get("proj:shape") or items[0].properties["proj:shape"]
        cube = np.empty((len(items), height, width), dtype=np.float32)
        for t, item in enumerate(items):
            asset = item.assets[band]
            meta = asset.extra_fields["raster:bands"][0]
            with rasterio.open(asset.get_absolute_href()) as src:
                dn = src.read(1, window=Window(0, 0, width, height))
            plane = dn.astype(np.float32)
            plane *= np.float32(meta["scale"])
            plane += np.float32(meta["offset"])
            plane[dn == meta["nodata"]] = np.nan
            cube[t] = plane
        out[band] = cube
    return out


def read_datacubes(items: list[pystac.Item]) -> dict[str, np.ndarray]:
    ds = datacubes.load(items, BANDS).compute()
    return {band: ds[band].values for band in BANDS}


def read_datacubes_one_thread(items: list[pystac.Item]) -> dict[str, np.ndarray]:
    with dask.config.set(scheduler="synchronous"):
        return read_datacubes(items)


def best_times(readers: dict, items: list[pystac.Item], repeat: int) -> dict[str, tuple]:
    """Best wall-clock and CPU seconds of each reader; runs are interleaved so that a burst
    of load from other processes on the machine hits every reader alike."""
    wall: dict[str, list[float]] = {name: [] for name in readers}
    cpu: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(repeat):
        for name, func in readers.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            func(items)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (min(wall[name]), min(cpu[name])) for name in readers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sample_dir", nargs="?", type=Path, help="sample federation directory")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each reader (best kept)")
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]  # other processes on the machine skew the timings

    with tempfile.TemporaryDirectory() as tmp:
        sample_dir = args.sample_dir
        if sample_dir is None or not (sample_dir / "centres.yaml").is_file():
            import lab

            sample_dir = sample_dir or Path(tmp) / "sample"
            print(f"generating the sample federation into {sample_dir} ...")
            lab.make_sample(sample_dir)
        items = sample_items(sample_dir)

        # Correctness first (and warms the file cache for both readers).
        reference = read_rasterio(items)
        loaded = read_datacubes(items)
        for band in BANDS:
            np.testing.assert_allclose(loaded[band], reference[band], rtol=0, atol=1e-6)
        megabytes = sum(array.nbytes for array in reference.values()) / 1e6

        readers = {
            "rasterio, one thread, windowed reads": read_rasterio,
            "datacubes.load(...).compute(), default chunks": read_datacubes,
            "datacubes.load(...).compute(), one thread (synchronous)": read_datacubes_one_thread,
        }
        results = best_times(readers, items, args.repeat)

    workers = dask.config.get("num_workers", None) or os.cpu_count()
    print(f"cube: {len(items)} dates x {len(BANDS)} bands, {megabytes:.1f} MB of float32")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, dask threads: {workers}, "
        f"load average (1 min) at start {load_start:.1f}, at end {os.getloadavg()[0]:.1f}"
    )
    print("| reader | best of | wall s | MB/s | CPU s |")
    print("|---|---|---|---|---|")
    for name, (wall, cpu) in results.items():
        print(f"| {name} | {args.repeat} | {wall:.3f} | {megabytes / wall:.0f} | {cpu:.3f} |")
    (rio_wall, rio_cpu), (dc_wall, dc_cpu), (one_wall, _) = results.values()
    print(
        f"ratio datacubes / rasterio (MB/s): {rio_wall / dc_wall:.2f} (goal >= 0.7); "
        f"one thread: {rio_wall / one_wall:.2f}; CPU time: {rio_cpu / dc_cpu:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
