"""``earthlab cube``: build analysis-ready cubes from specs, describe and list them."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lab.cli import non_negative_int, positive_int


def register(subparsers: Any) -> None:
    """Add the ``cube`` command group (build, info, list, catalog)."""
    parser = subparsers.add_parser(
        "cube",
        help="build analysis-ready cubes (Zarr, COG) from specs; describe and list them",
        description="Build, describe and list analysis-ready datacubes.",
    )
    commands = parser.add_subparsers(dest="cube_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: _help(parser))

    build = commands.add_parser(
        "build",
        help="build, resume or extend a cube from a spec",
        description="Build the cube a spec describes. Re-running resumes a killed or failed "
        "build and appends new time steps; with nothing new it writes nothing.",
    )
    build.add_argument("spec", help="spec file (YAML) or name of a shipped spec")
    build.add_argument("--target", help="Zarr URL or path (.zarr) overriding the spec's")
    build.add_argument(
        "--workers", type=positive_int, help="regions filled at once (default: CPUs, max 4)"
    )
    build.add_argument("--cog", action="store_true", help="also export a COG per band and step")
    build.add_argument(
        "--overwrite", action="store_true", help="replace a target built from another spec"
    )
    build.add_argument("--centres", help="centres file (default: $EARTHLAB_CENTRES or the sample)")
    build.add_argument(
        "--retries", type=non_negative_int, default=2, help="retries of a failing region"
    )
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=run_build)

    info = commands.add_parser("info", help="describe a built cube (STAC metadata, state)")
    info.add_argument("target", help="Zarr URL or path of the cube")
    info.add_argument("--centres", help="centres file, for S3 credentials")
    info.add_argument("--json", action="store_true", help="print the cube's STAC Item")
    info.set_defaults(func=run_info)

    listing = commands.add_parser(
        "list",
        help="list the cubes of a store or of a centre",
        description="List the cubes of a store or of a centre's storage. A local STORE that "
        "does not exist, or is not a directory, is a bad argument (exit status 2); a centre's "
        "storage not created yet lists no cube.",
    )
    where = listing.add_mutually_exclusive_group(required=True)
    where.add_argument("store", nargs="?", help="directory or s3:// prefix holding cubes")
    where.add_argument("--centre", help="list the storage of this centre")
    listing.add_argument("--centres", help="centres file")
    listing.set_defaults(func=run_list)

    catalog = commands.add_parser(
        "catalog", help="write the lab's intake catalogue (built cubes, in-situ collections)"
    )
    catalog.add_argument("--out", required=True, help="YAML file to write")
    catalog.add_argument("--centres", help="centres file")
    catalog.add_argument(
        "--store", action="append", default=[], help="another directory of cubes (repeatable)"
    )
    catalog.set_defaults(func=run_catalog)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_build(args: argparse.Namespace) -> int:
    """Build a cube; exit 1 with how to resume when some regions failed."""
    import datacubes
    from lab.cli import output_parent

    if args.target:  # the spec's own target is checked by the build, with the spec named
        output_parent(args.target, "--target")
    try:
        report = datacubes.build(
            args.spec,
            target=args.target,
            workers=args.workers,
            cog=args.cog,
            overwrite=args.overwrite,
            centres=args.centres,
            retries=args.retries,
            progress=not args.quiet,
        )
    except datacubes.IncompleteBuildError as exc:
        print(exc.report.summary().replace("SPEC", args.spec), file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Print a cube's metadata."""
    import datacubes

    item, _, text = datacubes.cube_info(args.target, centres=args.centres)
    if args.json:
        json.dump(item, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(text)
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print the cubes of a store (exit 2 when a local store is not a directory)."""
    import os

    import datacubes
    from lab.cli import CommandLineError

    if args.store is not None and "://" not in args.store:
        folder = os.path.expanduser(args.store)
        if not os.path.isdir(folder):
            what = "is not a directory" if os.path.exists(folder) else "does not exist"
            raise CommandLineError(
                f"argument store: {args.store} {what}: give the directory holding the cubes "
                "(<name>.zarr beside <name>.meta/), or --centre NAME for a centre's storage"
            )

    items = datacubes.list_cubes(args.store, centre=args.centre, centres=args.centres)
    rows = [("name", "status", "steps", "start", "end", "url")]
    for item in items:
        props = item.properties
        rows.append(
            (
                item.id,
                "complete" if props.get("earthlab:complete") else "incomplete",
                str(len(props.get("earthlab:steps", []))),
                str(props.get("start_datetime") or ""),
                str(props.get("end_datetime") or ""),
                item.assets["zarr"].href,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def run_catalog(args: argparse.Namespace) -> int:
    """Write the intake catalogue."""
    import datacubes
    from lab.cli import output_parent

    output_parent(args.out, "--out")
    path = datacubes.write_intake_catalog(args.out, args.centres, stores=args.store)
    print(f"Wrote the intake catalogue to {path}; open a dataset with:")
    print(f"  import intake; intake.from_yaml_file({str(path)!r})['<name>'].read()")
    return 0
