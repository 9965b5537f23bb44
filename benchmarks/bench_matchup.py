"""Matchup extraction on the lazy cube vs computing the whole cube first.

Both modes extract the same matchups (all stations, all in-situ samples, turbidity and
chlorophyll-a) from ``add_water_quality(datacubes.load(...))`` on the sample federation:

1. lazy: ``recipes.matchup.extract`` on the dask-backed cube (only box chunks are read);
2. eager: ``cube.compute()`` then ``extract`` on the in-memory cube.

Each mode runs in a fresh subprocess so that its peak RSS is its own. The two tables are
compared before timing is reported.

Usage::

    python benchmarks/bench_matchup.py [SAMPLE_DIR] [--repeat 3] [--chunks 256]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_mode(sample_dir: Path, mode: str, chunks: int, out: Path) -> dict:
    """Run one mode in this process and return its timing (called in a subprocess)."""
    import pandas as pd
    import pystac

    import datacubes
    from recipes import insitu, matchup
    from recipes import water_quality as wq

    started = time.perf_counter()
    scenes = list(
        pystac.Catalog.from_file(str(sample_dir / "theia" / "catalog.json")).get_items(
            recursive=True
        )
    )
    stations = pystac.Catalog.from_file(str(sample_dir / "odatis" / "catalog.json")).get_items(
        recursive=True
    )
    table = pd.concat(
        [insitu.read(item.assets["parquet"].get_absolute_href()).data for item in stations]
    )
    cube = datacubes.load(
        scenes,
        ["green", "red", "rededge1", "nir", "swir16", "scl"],
        mask="clouds",
        chunks={"time": 1, "y": chunks, "x": chunks},
    )
    cube = wq.add_water_quality(cube)[["turbidity", "chlorophyll_a", "scl"]]
    setup = time.perf_counter() - started
    import psutil

    baseline_mb = psutil.Process().memory_info().rss / 2**20  # imports, catalogue, graph
    started = time.perf_counter()
    if mode == "eager":
        cube = cube.compute()
    result = matchup.extract(cube, table)
    seconds = time.perf_counter() - started
    result.to_parquet(out)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": mode,
        "seconds": seconds,
        "setup": setup,
        "peak_rss_mb": rss_mb,
        "extra_mb": rss_mb - baseline_mb,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sample_dir", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=256, help="spatial chunk size of the cube")
    parser.add_argument("--mode", choices=["lazy", "eager"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode:  # child process
        print(json.dumps(run_mode(args.sample_dir, args.mode, args.chunks, args.out)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        sample_dir = args.sample_dir
        if sample_dir is None or not (sample_dir / "centres.yaml").is_file():
            import lab

            sample_dir = sample_dir or Path(tmp) / "sample"
            lab.make_sample(sample_dir)
        results: dict[str, list[dict]] = {"lazy": [], "eager": []}
        for _ in range(args.repeat):
            for mode in results:
                out = Path(tmp) / f"{mode}.parquet"
                child = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        str(sample_dir),
                        "--mode",
                        mode,
                        "--out",
                        str(out),
                        "--chunks",
                        str(args.chunks),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                results[mode].append(json.loads(child.stdout.strip().splitlines()[-1]))
        import pandas as pd

        lazy = pd.read_parquet(Path(tmp) / "lazy.parquet")
        eager = pd.read_parquet(Path(tmp) / "eager.parquet")
        pd.testing.assert_frame_equal(lazy, eager)

    best = {mode: min(runs, key=lambda r: r["seconds"]) for mode, runs in results.items()}
    rss = {mode: min(r["peak_rss_mb"] for r in runs) for mode, runs in results.items()}
    extra = {mode: min(r["extra_mb"] for r in runs) for mode, runs in results.items()}
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"spatial chunks {args.chunks} px; best of {args.repeat}, each mode in a fresh process"
    )
    print("| mode | extraction s | peak RSS MB | peak RSS above the pre-extraction baseline MB |")
    print("|---|---|---|---|")
    for mode in ("lazy", "eager"):
        print(f"| {mode} | {best[mode]['seconds']:.2f} | {rss[mode]:.0f} | {extra[mode]:.0f} |")
    print(
        f"ratio eager / lazy time: {best['eager']['seconds'] / best['lazy']['seconds']:.1f}x "
        f"(goal >= 10x); memory above baseline eager / lazy: {extra['eager'] / max(extra['lazy'], 1):.1f}x; "
        f"{int(lazy['kept'].sum())} matchups kept of {len(lazy)} candidates, identical in both modes"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
