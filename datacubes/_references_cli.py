"""``earthlab references``: combine gridded NetCDF files into kerchunk references + a Collection."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``references`` command group (build)."""
    parser = subparsers.add_parser(
        "references",
        help="combine NetCDF files into one kerchunk reference file and a STAC Collection",
        description="Write kerchunk references for gridded files, opened by "
        "datacubes.load_gridded.",
    )
    commands = parser.add_subparsers(dest="references_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    build = commands.add_parser(
        "build",
        help="combine the NetCDF files of a folder along time",
        description="Read each NetCDF4/HDF5 file's chunk offsets once, combine them along "
        "time into one reference JSON and write collection.json next to it.",
    )
    build.add_argument("folder", help="folder of .nc/.nc4/.h5 files (or one file)")
    build.add_argument("--out", required=True, help="reference JSON to write (e.g. refs.json)")
    build.add_argument("--collection-id", help="id of the STAC Collection (default: out's stem)")
    build.add_argument("--concat-dim", default="time", help="dimension to combine along")
    build.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from datacubes import write_references
    from lab.cli import output_parent

    output_parent(args.out, "--out")  # a wrong --out fails before any file is read
    collection = write_references(
        args.folder, args.out, collection_id=args.collection_id, concat_dim=args.concat_dim
    )
    print(f"references: {args.out}\ncollection: {collection}")
    return 0
