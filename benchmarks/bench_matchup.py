"""Matchup extraction on the lazy cube vs computing the whole cube first.

Both modes extract the same matchups (all stations, all in-situ samples, turbidity and
chlorophyll-a) from ``add_water_quality(datacubes.load(...))`` on the sample federation:

1. lazy: ``recipes.matchup.extract`` on the dask-backed cube (only box chunks are read);
2. eager: ``cube.compute()`` then ``extract`` on the in-memory cube.

Each mode runs in a fresh subprocess so that its peak RSS is its own. The two tables are
checked identical before timing is reported.

How much the lazy extraction saves depends on how much of the cube the stations' chunks
cover. On the sample (800 x 800 pixels, 16 km) the seven stations of the lagoon touch about
a fifth of the chunks. ``--mosaic K`` measures a cube of K x K scene extents instead: every
band of every scene is tiled K x K (K odd) into one larger COG, the original scene in the
centre, so the stations fall on exactly the same pixel values and the matchup table must
equal the sample's (checked, up to the row/column offset). K = 3 gives 2400 x 2400 pixels
(48 km, under half the side of a Sentinel-2 tile).

Computing a whole cube is cheapest with large chunks, reading boxes with chunks near the COG's
internal tiles (256 px here): ``--eager-chunks`` gives the eager mode its own chunking, so
that each mode can be measured at its best.

``--flags`` compares the lazy extraction on the SCL with the same extraction on the
product-independent flags of ``datacubes.load(flags=["water", "clouds", "nodata"])`` (what
the crossing reads, so that it runs on MAJA products too): the same table (checked), and the
cost of reading three flags made from the SCL instead of the SCL itself.

Usage::

    python benchmarks/bench_matchup.py [SAMPLE_DIR] [--repeat 3] [--chunks 256]
        [--eager-chunks 2048] [--mosaic 3] [--mosaic-dir DIR]
    python benchmarks/bench_matchup.py SAMPLE_DIR --suite [--write-docs]
    python benchmarks/bench_matchup.py SAMPLE_DIR --flags [--repeat 5]

``--suite`` runs every configuration of docs/benchmarks.md (the mosaics go to
``--mosaic-dir``/mosaicK, kept for the next run, or to a temporary directory; 1.4 GB for K = 5)
and ``--write-docs`` replaces the table there.
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

BANDS = ["green", "red", "rededge1", "nir", "swir16", "scl"]


def scene_items(sample_dir: Path, mosaic_dir: Path | None) -> list:
    """The theia scenes of the sample, or of its mosaic when ``mosaic_dir`` is given."""
    import pystac

    if mosaic_dir is not None:
        features = json.loads((mosaic_dir / "items.json").read_text())["features"]
        return [pystac.Item.from_dict(feature) for feature in features]
    catalog = pystac.Catalog.from_file(str(sample_dir / "theia" / "catalog.json"))
    # the Sen2Cor-like scenes (theia also publishes them as MAJA products)
    return [i for i in catalog.get_items(recursive=True) if i.collection_id == "sentinel-2-l2a"]


def make_mosaic(sample_dir: Path, k: int, out: Path) -> Path:
    """Write the sample's scenes tiled ``k`` x ``k`` (centre tile = original) under ``out``."""
    import numpy as np
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import Affine

    if k < 1 or k % 2 == 0:
        raise SystemExit(f"--mosaic must be an odd number >= 1, got {k}")
    if (out / "items.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    features = []
    for item in scene_items(sample_dir, None):
        props = item.properties
        rows, cols = props["proj:shape"]
        res_x, _, x0, _, res_y, y0 = props["proj:transform"][:6]
        shift = k // 2
        transform = Affine(res_x, 0, x0 - shift * cols * res_x, 0, res_y, y0 - shift * rows * res_y)
        shape = (rows * k, cols * k)
        left, top = transform.c, transform.f
        right, bottom = left + shape[1] * res_x, top + shape[0] * res_y
        to_lonlat = Transformer.from_crs(props["proj:code"], "EPSG:4326", always_xy=True)
        lons, lats = to_lonlat.transform([left, right, right, left], [bottom, bottom, top, top])
        feature = item.to_dict(include_self_link=False, transform_hrefs=False)
        feature["links"] = []
        feature["properties"].update(
            {
                "proj:shape": list(shape),
                "proj:transform": list(transform)[:6],
                "proj:bbox": [left, bottom, right, top],
            }
        )
        ring = [[float(x), float(y)] for x, y in zip(lons, lats, strict=True)]
        feature["geometry"] = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
        feature["bbox"] = [min(lons), min(lats), max(lons), max(lats)]
        assets = {}
        for band in BANDS:
            asset = item.assets[band]
            target = out / item.id / f"{band}.tif"
            target.parent.mkdir(exist_ok=True)
            with rasterio.open(asset.get_absolute_href()) as src:
                profile = src.profile | {
                    "width": shape[1],
                    "height": shape[0],
                    "transform": transform,
                    "tiled": True,
                    "blockxsize": 256,
                    "blockysize": 256,
                    "compress": "deflate",
                }
                tiled = np.tile(src.read(1), (k, k))
            with rasterio.open(target, "w", **profile) as dst:
                dst.write(tiled, 1)
            entry = asset.to_dict()
            entry["href"] = str(target)
            entry.pop("file:size", None)
            entry.pop("file:checksum", None)
            assets[band] = entry
        feature["assets"] = assets
        features.append(feature)
    (out / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return out


def run_mode(sample_dir: Path, mosaic_dir: Path | None, mode: str, chunks: int, out: Path) -> dict:
    """Run one mode in this process and return its timing (called in a subprocess)."""
    import pandas as pd
    import psutil
    import pystac

    import datacubes
    from recipes import insitu, matchup
    from recipes import water_quality as wq

    started = time.perf_counter()
    scenes = scene_items(sample_dir, mosaic_dir)
    odatis = pystac.Catalog.from_file(str(sample_dir / "odatis" / "catalog.json"))
    stations = [
        item  # the station tables, not the ocean-colour product's days
        for item in odatis.get_items(recursive=True)
        if item.collection_id == "insitu-water-quality"
    ]
    table = pd.concat(
        [insitu.read(item.assets["parquet"].get_absolute_href()).data for item in stations]
    )
    layout = {"time": 1, "y": chunks, "x": chunks}
    if mode == "flags":
        flags = ["water", "clouds", "nodata"]
        cube = datacubes.load(scenes, BANDS[:-1], mask="clouds", flags=flags, chunks=layout)
        kept = ["turbidity", "chlorophyll_a", *(f"flag_{name}" for name in flags)]
        cube = wq.add_water_quality(cube, water="flags")[kept]
    else:
        cube = datacubes.load(scenes, BANDS, mask="clouds", chunks=layout)
        cube = wq.add_water_quality(cube)[["turbidity", "chlorophyll_a", "scl"]]
    setup = time.perf_counter() - started
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
        "shape": [int(cube.sizes[d]) for d in ("time", "y", "x")],
    }


def _child(sample_dir: Path, mosaic_dir: Path | None, mode: str, chunks: int, out: Path) -> dict:
    command = [
        sys.executable,
        __file__,
        str(sample_dir),
        "--mode",
        mode,
        "--out",
        str(out),
        "--chunks",
        str(chunks),
    ]
    if mosaic_dir is not None:
        command += ["--mosaic-dir", str(mosaic_dir)]
    child = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


def _same_matchups(mosaic, sample, offset: int) -> None:
    """The mosaic's table is the sample's with rows and columns shifted by ``offset``."""
    import pandas as pd

    shifted = mosaic.copy()
    for column in ("row", "col"):
        shifted[column] = shifted[column] - offset
    pd.testing.assert_frame_equal(shifted, sample)


def measure(
    sample_dir: Path,
    mosaic: int,
    mosaic_dir: Path | None,
    chunks: int,
    eager_chunks: int,
    repeat: int,
    tmp: Path,
) -> dict:
    """Time both modes ``repeat`` times (fresh processes) and check their tables agree."""
    import pandas as pd

    data_dir = None
    if mosaic > 1:
        target = mosaic_dir or tmp / f"mosaic{mosaic}"
        print(f"mosaic {mosaic} x {mosaic} in {target} ...", file=sys.stderr, flush=True)
        data_dir = make_mosaic(sample_dir, mosaic, target)
    results: dict[str, list[dict]] = {"lazy": [], "eager": []}
    for _ in range(repeat):
        for mode in results:
            size = eager_chunks if mode == "eager" else chunks
            results[mode].append(_child(sample_dir, data_dir, mode, size, tmp / f"{mode}.parquet"))
    lazy = pd.read_parquet(tmp / "lazy.parquet")
    pd.testing.assert_frame_equal(lazy, pd.read_parquet(tmp / "eager.parquet"))
    if data_dir is not None:
        _child(sample_dir, None, "lazy", chunks, tmp / "sample.parquet")
        _same_matchups(lazy, pd.read_parquet(tmp / "sample.parquet"), (mosaic // 2) * 800)
    best = {mode: min(runs, key=lambda r: r["seconds"]) for mode, runs in results.items()}
    return {
        "mosaic": mosaic,
        "shape": best["lazy"]["shape"],
        "chunks": chunks,
        "eager_chunks": eager_chunks,
        "lazy_s": best["lazy"]["seconds"],
        "eager_s": best["eager"]["seconds"],
        "lazy_rss": min(r["peak_rss_mb"] for r in results["lazy"]),
        "eager_rss": min(r["peak_rss_mb"] for r in results["eager"]),
        "lazy_extra": min(r["extra_mb"] for r in results["lazy"]),
        "eager_extra": min(r["extra_mb"] for r in results["eager"]),
        "kept": int(lazy["kept"].sum()),
        "candidates": len(lazy),
    }


def measure_flags(sample_dir: Path, chunks: int, repeat: int, tmp: Path) -> int:
    """Lazy extraction on the SCL vs on flags, interleaved, best of ``repeat``; same table."""
    import pandas as pd

    runs: dict[str, list[dict]] = {"lazy": [], "flags": []}
    for _ in range(repeat):
        for mode in runs:
            runs[mode].append(_child(sample_dir, None, mode, chunks, tmp / f"{mode}.parquet"))
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp / "lazy.parquet"), pd.read_parquet(tmp / "flags.parquet")
    )
    scl, flags = (min(r["seconds"] for r in runs[mode]) for mode in ("lazy", "flags"))
    load = os.getloadavg()[0]
    print(
        f"matchups on the SCL {scl:.2f} s, on flags {flags:.2f} s: flags / SCL = "
        f"{flags / scl:.2f} (best of {repeat}, chunks {chunks}, load {load:.1f}); same table"
    )
    return 0


SUITE = (  # (mosaic, lazy chunks, eager chunks)
    (1, 256, 256),
    (1, 128, 128),
    (1, 256, 2048),
    (3, 256, 256),
    (3, 256, 2048),
    (5, 256, 2048),
)
"""The configurations of docs/benchmarks.md: same chunks for both modes, then each at its best."""


def row(r: dict) -> str:
    t, ny, nx = r["shape"]
    km = ny * 20 / 1000
    return (
        f"| {t} x {ny} x {nx} ({km:.0f} km) | {r['chunks']} | {r['eager_chunks']} | "
        f"{r['lazy_s']:.2f} | {r['eager_s']:.2f} | **{r['eager_s'] / r['lazy_s']:.1f}x** | "
        f"{r['lazy_extra']:.0f} / {r['eager_extra']:.0f} | "
        f"{r['eager_extra'] / max(r['lazy_extra'], 1):.0f}x |"
    )


HEADER = (
    "| cube (time x y x x) | lazy chunks px | eager chunks px | lazy s | eager s "
    "| eager / lazy time | memory above baseline lazy / eager MB | eager / lazy memory |\n"
    "|---|---|---|---|---|---|---|---|"
)


def write_docs(table: str, repeat: int, load: tuple[float, float]) -> None:
    """Replace the table of the "Matchups" section of docs/benchmarks.md (prose kept)."""
    docs = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
    text = docs.read_text()
    start = text.index("<!-- bench_matchup:start -->")
    end = text.index("<!-- bench_matchup:end -->")
    stamp = (
        f"Measured by `python benchmarks/bench_matchup.py SAMPLE_DIR --suite --write-docs`: best"
        f" of {repeat} per mode, each run in a fresh process; {os.cpu_count()} cores shared with"
        f" other work, load average {load[0]:.1f} at start and {load[1]:.1f} at end."
    )
    block = f"<!-- bench_matchup:start -->\n{stamp}\n\n{table}\n"
    docs.write_text(text[:start] + block + text[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sample_dir", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=256, help="spatial chunk size of the cube")
    parser.add_argument(
        "--eager-chunks", type=int, help="spatial chunks for the eager mode (default: --chunks)"
    )
    parser.add_argument("--mosaic", type=int, default=1, help="tile the scenes K x K (K odd)")
    parser.add_argument("--mosaic-dir", type=Path, help="where the mosaic is (or is written)")
    parser.add_argument("--suite", action="store_true", help="every configuration of the docs")
    parser.add_argument("--write-docs", action="store_true", help="with --suite: update the docs")
    parser.add_argument(
        "--flags", action="store_true", help="the lazy extraction on the SCL vs on flags"
    )
    parser.add_argument("--mode", choices=["lazy", "eager", "flags"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode:  # child process
        result = run_mode(args.sample_dir, args.mosaic_dir, args.mode, args.chunks, args.out)
        print(json.dumps(result))
        return 0

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sample_dir = args.sample_dir
        if sample_dir is None or not (sample_dir / "centres.yaml").is_file():
            import lab

            sample_dir = sample_dir or tmp / "sample"
            lab.make_sample(sample_dir)
        if args.flags:
            return measure_flags(sample_dir, args.chunks, args.repeat, tmp)
        configs = (
            SUITE if args.suite else ((args.mosaic, args.chunks, args.eager_chunks or args.chunks),)
        )
        results = []
        for mosaic, chunks, eager_chunks in configs:
            mosaic_dir = args.mosaic_dir
            if args.suite:  # --mosaic-dir is then the parent of one directory per K
                mosaic_dir = args.mosaic_dir / f"mosaic{mosaic}" if args.mosaic_dir else None
            results.append(
                measure(sample_dir, mosaic, mosaic_dir, chunks, eager_chunks, args.repeat, tmp)
            )
            print(row(results[-1]), file=sys.stderr, flush=True)
    table = "\n".join([HEADER, *(row(r) for r in results)])
    print(table)
    print(
        f"{results[0]['kept']} matchups kept of {results[0]['candidates']} candidates, the same"
        " table in both modes and on every mosaic (checked)"
    )
    if args.write_docs:
        write_docs(table, args.repeat, (load_start, os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
