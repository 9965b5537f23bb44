"""``earthlab sample``: write the embedded sample federation to a directory."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sample`` command to the ``earthlab`` parser."""
    from lab.cli import int_range
    from lab.sample import DEFAULT_DATES, DEFAULT_SEED  # light: generation modules load on use

    parser = subparsers.add_parser(
        "sample",
        help="write the embedded sample federation (THEIA + ODATIS around the Étang de Thau)",
        description=(
            "Write a small, deterministic federation of two data centres (Sentinel-2 L2A-like "
            "scenes and in-situ water-quality stations) with the truth it was generated from."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, help="target directory (new or empty)")
    parser.add_argument(
        "--dates",
        type=int_range(16, 113),
        default=DEFAULT_DATES,
        help=f"number of acquisition dates, 16 to 113 (default {DEFAULT_DATES})",
    )
    parser.add_argument(
        "--seed",
        type=int_range(0),
        default=DEFAULT_SEED,
        help=f"random seed (default {DEFAULT_SEED})",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a sample federation already in --out"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the sample and say how to use it."""
    from lab._cli import output_dir
    from lab.sample import make_sample

    out = output_dir(args.out, "--out")
    start = time.perf_counter()
    centres = make_sample(
        out, n_dates=args.dates, seed=args.seed, overwrite=args.overwrite, progress=True
    )
    root = centres.parent
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    print(
        f"Wrote the sample federation to {root} "
        f"({args.dates} dates, seed {args.seed}, {size / 1e6:.0f} MB, "
        f"{time.perf_counter() - start:.0f} s):\n"
        f"  {centres}  centres file (theia + odatis)\n"
        f"  {root / 'theia'}  Sentinel-2 L2A-like COGs, catalog.json, items.parquet\n"
        f"  {root / 'odatis'}  in-situ stations (Parquet + CSV), catalog.json, items.parquet\n"
        f"  {root / 'truth'}  truth.nc, generator.json, expected_matchups.csv\n"
        "Use it with:\n"
        f"  export EARTHLAB_CENTRES={centres}"
    )
    return 0
