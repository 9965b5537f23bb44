"""``earthlab demo``: the water-quality crossing on the embedded sample federation."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``demo`` command."""
    parser = subparsers.add_parser(
        "demo",
        help="run the water-quality crossing end to end (the lab's main job)",
        description="Search both sample centres, load the Sentinel-2 cube, mask clouds, compute "
        "water-quality products, extract matchups against in-situ stations, validate, "
        "recalibrate, and write the cube (Zarr), maps (COG), matchups.parquet, "
        "validation.json and report.html to --out.",
    )
    parser.add_argument("--out", default="out/demo", help="output directory (default: out/demo)")
    parser.add_argument("--centres", help="centres file (default: $EARTHLAB_CENTRES or the sample)")
    parser.add_argument("--max-dt", default="3h", help="matchup time window (default: 3h)")
    parser.add_argument(
        "--window", type=int, default=5, help="matchup box size in pixels (default: 5)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the crossing and print where the report is."""
    from lab.cli import output_dir
    from recipes.crossing import water_quality_crossing

    out = output_dir(args.out, "--out")  # before minutes of work, not after
    result = water_quality_crossing(
        out, centres=args.centres, max_dt=args.max_dt, window=args.window
    )
    print(result)
    return 0
