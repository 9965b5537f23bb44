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
        "validation.json and report.html to --out. With --crossing ocean-colour: the daily "
        "gridded ocean-colour product against the stations and against Sentinel-2 on its grid.",
    )
    parser.add_argument(
        "--crossing",
        choices=("water-quality", "ocean-colour"),
        default="water-quality",
        help="water-quality (Sentinel-2 against in-situ, the default) or ocean-colour (the "
        "gridded product against in-situ and Sentinel-2)",
    )
    parser.add_argument("--out", default="out/demo", help="output directory (default: out/demo)")
    parser.add_argument("--centres", help="centres file (default: $EARTHLAB_CENTRES or the sample)")
    parser.add_argument(
        "--collection",
        help="water-quality crossing: the Sentinel-2 L2A collection, sentinel-2-l2a (Sen2Cor, "
        "the default) or sentinel2-l2a-theia (THEIA MAJA)",
    )
    parser.add_argument(
        "--max-dt",
        type=_max_dt,
        help="matchup time window (default: 3h; 12h, the product's day, for ocean-colour)",
    )
    parser.add_argument(
        "--window",
        type=_window,
        help="matchup box size in pixels (grid cells for ocean-colour), odd, 3 to 11 "
        "(default: 5; 3 for ocean-colour)",
    )
    parser.set_defaults(func=run)


def _protocol_value(field: str, value: Any) -> Any:
    """``value`` checked by the matchup protocol (argparse's error when it refuses it)."""
    from lab import ConfigurationError
    from recipes.matchup import MatchupProtocol

    try:
        return getattr(MatchupProtocol(**{field: value}), field)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _window(text: str) -> int:
    from lab.cli import int_range

    return int(_protocol_value("window", int_range(3, 11)(text)))


def _max_dt(text: str) -> str:
    _protocol_value("max_dt", text)
    return text


def run(args: argparse.Namespace) -> int:
    """Run the crossing and print where the report is."""
    from lab.cli import output_dir
    from recipes.crossing import ocean_colour_crossing, water_quality_crossing

    out = output_dir(args.out, "--out")  # before minutes of work, not after
    protocol = {"max_dt": args.max_dt, "window": args.window}
    protocol = {key: value for key, value in protocol.items() if value is not None}
    if args.crossing == "ocean-colour":
        if args.collection is not None:
            from lab import ConfigurationError

            raise ConfigurationError(
                "--collection chooses the Sentinel-2 L2A collection of the water-quality "
                "crossing; the ocean-colour crossing reads the sample's ocean-colour-daily "
                "product: leave --collection out or use --crossing water-quality"
            )
        result = ocean_colour_crossing(out, centres=args.centres, **protocol)
    else:
        result = water_quality_crossing(
            out,
            centres=args.centres,
            collection=args.collection or "sentinel-2-l2a",
            **protocol,
        )
    print(result)
    return 0
