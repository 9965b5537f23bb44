"""``earthlab search``: one search over every data centre."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lab.cli import (
    add_federation_options,
    bbox,
    cql2_filter,
    datetime_interval,
    positive_int,
)


def register(subparsers: Any) -> None:
    """Add the ``search`` command."""
    parser = subparsers.add_parser(
        "search",
        help="search the catalogues of all data centres at once",
        description="Search every data centre in parallel and print the merged items "
        "and what each centre answered.",
    )
    parser.add_argument("--collections", "-c", help="collection id(s), comma-separated")
    parser.add_argument("--bbox", type=bbox, help="west,south,east,north in degrees (lon/lat)")
    parser.add_argument(
        "--datetime",
        "-d",
        type=datetime_interval,
        help="instant or interval, e.g. 2022-01/2022-03 or 2022-01-15/..",
    )
    parser.add_argument("--ids", help="item id(s), comma-separated")
    parser.add_argument(
        "--filter",
        type=cql2_filter,
        metavar="CQL2",
        help='CQL2 filter, as text ("eo:cloud_cover < 20") or CQL2-JSON; sent to the APIs '
        "that conform to Filter, evaluated by the lab for the others",
    )
    parser.add_argument(
        "--sortby",
        type=_sortby,
        metavar="FIELDS",
        help="order of the items, as the STAC API Sort extension writes it: fields with + or - "
        "(descending), comma-separated, e.g. --sortby=-eo:cloud_cover,+datetime (write "
        "--sortby=-... with '=': a value starting with '-' is read as an option otherwise); "
        "default datetime ascending; items without a field come last",
    )
    parser.add_argument(
        "--max-items",
        "-n",
        type=positive_int,
        help="at most this many items in all (the first in --sortby order, the earliest by "
        "default), as stac-client's --max-items",
    )
    parser.add_argument(
        "--limit",
        type=int,
        dest="page_size",
        metavar="N",
        help="not supported: in stac-client --limit is the page size, not a total; use --max-items",
    )
    add_federation_options(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a GeoJSON FeatureCollection with the federation report "
        "('federation': one entry per centre; 'federation:missing': centres not searched)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the search and print it."""
    from lab._catalog import catalog
    from lab._cli import CommandLineError

    if args.page_size is not None:
        raise CommandLineError(
            "argument --limit: in stac-client --limit is the page size, not the number of "
            "items; earthlab search pages each centre by itself. Use --max-items "
            f"{args.page_size} for at most {args.page_size} items in all"
        )
    federation = catalog(args.centres_file)
    result = federation.search(
        collections=args.collections,
        bbox=args.bbox,
        datetime=args.datetime,
        ids=args.ids,
        filter=args.filter,
        sortby=args.sortby,
        limit=args.max_items,
        centres=args.only,
        timeout=args.timeout,
    )
    if args.json:
        document = result.item_collection().to_dict(transform_hrefs=False)
        document["federation"] = result.federation_table()
        document["federation:missing"] = result.federation_missing
        json.dump(document, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(_table(result))
        print()
        print(result.describe())
    return 0 if not result.federation_missing or len(result) else 1


def _sortby(value: str) -> str:
    """``--sortby``: checked now, so that a bad one is argparse's error (exit 2)."""
    from lab._errors import ConfigurationError
    from lab._sorting import parse_sortby

    try:
        parse_sortby(value)
    except ConfigurationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def _table(result: Any) -> str:
    rows = [("datetime", "centre", "collection", "id", "cloud %")]
    for item in result:
        when = item.datetime or item.common_metadata.start_datetime
        cloud = item.properties.get("eo:cloud_cover")
        rows.append(
            (
                when.strftime("%Y-%m-%d %H:%M") if when else "",
                item.properties.get("earthlab:centre", ""),
                item.collection_id or "",
                item.id,
                "" if cloud is None else f"{cloud:.0f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
