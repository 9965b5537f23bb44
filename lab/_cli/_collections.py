"""``earthlab collections``: find datasets in every data centre's catalogue at once."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lab.cli import add_federation_options, bbox, datetime_interval


def register(subparsers: Any) -> None:
    """Add the ``collections`` command."""
    parser = subparsers.add_parser(
        "collections",
        help="find datasets (collections) in the catalogues of all data centres, CSW included",
        description="Search every data centre's collections in parallel (STAC Collection "
        "Search, STAC /collections lists, static catalogues, OGC CSW records mapped to STAC) "
        "and print them with what each centre answered.",
    )
    parser.add_argument(
        "--q",
        "-q",
        metavar="TEXT",
        help="free text matched in id, title, description and keywords (comma: any term)",
    )
    parser.add_argument("--bbox", type=bbox, help="west,south,east,north in degrees (lon/lat)")
    parser.add_argument(
        "--datetime",
        "-d",
        type=datetime_interval,
        help="instant or interval the temporal extent overlaps, e.g. 2022-01/2022-03",
    )
    add_federation_options(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print {'collections': [STAC Collections], 'federation': one entry per centre, "
        "'federation:missing': centres not searched}",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Search the collections and print them.

    Exit 1 when nothing is found and a centre could not be searched.
    """
    from lab._catalog import catalog

    result = catalog(args.centres_file).collections(
        q=args.q, bbox=args.bbox, datetime=args.datetime, centres=args.only, timeout=args.timeout
    )
    if args.json:
        document = {
            "collections": [c.to_dict(include_self_link=False) for c in result],
            "federation": result.federation_table(),
            "federation:missing": result.federation_missing,
        }
        json.dump(document, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(table(result))
        print()
        print(result.describe())
    return 0 if not result.federation_missing or len(result) else 1


def table(result: Any) -> str:
    """The collections as text columns: centre, id, title, temporal extent."""
    rows = [("centre", "id", "title", "temporal extent")]
    for collection in result:
        start, end = (collection.extent.temporal.intervals or [[None, None]])[0]
        extent = f"{start.date() if start else '..'}/{end.date() if end else '..'}"
        title = collection.title or ""
        rows.append(
            (
                str(collection.extra_fields.get("earthlab:centre", "")),
                collection.id,
                title if len(title) <= 60 else title[:59] + "…",
                extent,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
