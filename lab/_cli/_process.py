"""``earthlab process``: run the processing service's processes from a shell (OGC API – Processes).

``list``, ``describe ID``, ``run ID -i name=value ... [--async]``, ``status JOB [--wait]``,
``results JOB``, ``dismiss JOB``, ``jobs``; ``subscribe ID -i ... --every SECONDS`` or
``--on-new-items COLLECTION [--bbox W,S,E,N]``, ``subscriptions``, ``unsubscribe SUB``. The service is the ``processes.url`` setting
(``EARTHLAB_PROCESSES__URL``, set by the hub in single-user servers) or ``--url``; the token is
``JUPYTERHUB_API_TOKEN`` or ``--token-env NAME`` (never a token on the command line: it would
show in the process list and the shell's history).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from lab.cli import CommandLineError, positive_float


def register(subparsers: Any) -> None:
    """Add the ``process`` command and its sub-commands."""
    parser = subparsers.add_parser(
        "process",
        help="run processes of the lab's processing service (OGC API - Processes)",
        description="List, describe and run the processes of an OGC API - Processes service "
        "(the lab's by default), follow jobs and read their results.",
    )
    parser.add_argument(
        "--url", help="the service's landing page (default: the processes.url setting)"
    )
    parser.add_argument(
        "--token-env",
        metavar="NAME",
        default="JUPYTERHUB_API_TOKEN",
        help="environment variable holding the token (default: JUPYTERHUB_API_TOKEN)",
    )
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="the processes the service offers")
    listing.add_argument("--json", action="store_true", help="print the summaries as JSON")

    describe = commands.add_parser("describe", help="a process's inputs and outputs")
    describe.add_argument("process_id", metavar="PROCESS")
    describe.add_argument("--json", action="store_true", help="print the server's description")

    run = commands.add_parser("run", help="run a process (synchronously unless --async)")
    _request_arguments(run)
    run.add_argument("--async", dest="asynchronous", action="store_true", help="submit a job")
    run.add_argument("--json", action="store_true", help="print JSON (results, or the job)")

    subscribe = commands.add_parser(
        "subscribe", help="run a process now, then on a schedule or on new items"
    )
    _request_arguments(subscribe)
    trigger = subscribe.add_mutually_exclusive_group(required=True)
    trigger.add_argument("--every", type=positive_float, metavar="SECONDS", help="a schedule")
    trigger.add_argument(
        "--on-new-items",
        metavar="COLLECTION",
        action="append",
        help="run when the catalogue finds new items of this collection (repeatable)",
    )
    subscribe.add_argument(
        "--bbox", metavar="W,S,E,N", help="with --on-new-items: only items within this box"
    )
    subscribe.add_argument("--json", action="store_true", help="print the subscription as JSON")

    subscriptions = commands.add_parser("subscriptions", help="your subscriptions")
    subscriptions.add_argument("--json", action="store_true", help="print them as JSON")

    unsubscribe = commands.add_parser("unsubscribe", help="cancel a subscription")
    unsubscribe.add_argument("subscription_id", metavar="SUBSCRIPTION")

    status = commands.add_parser("status", help="a job's status")
    status.add_argument("job_id", metavar="JOB")
    status.add_argument("--wait", action="store_true", help="wait until it is done")
    status.add_argument("--timeout", type=positive_float, help="seconds to wait at most")
    status.add_argument("--json", action="store_true", help="print the status as JSON")

    results = commands.add_parser("results", help="a successful job's outputs, as JSON")
    results.add_argument("job_id", metavar="JOB")

    dismiss = commands.add_parser("dismiss", help="cancel a job, or forget it and its results")
    dismiss.add_argument("job_id", metavar="JOB")

    jobs = commands.add_parser("jobs", help="your jobs")
    jobs.add_argument("--json", action="store_true", help="print the statuses as JSON")

    parser.set_defaults(func=run_command)


def _request_arguments(parser: Any) -> None:
    """The process and its inputs (``run`` and ``subscribe``)."""
    parser.add_argument("process_id", metavar="PROCESS")
    parser.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        type=_input,
        metavar="NAME=VALUE",
        help="an input; VALUE is read as JSON when it parses (42, [1,2], {...}), else text; "
        "repeat a name for several values",
    )
    parser.add_argument(
        "--inputs-file", metavar="FILE", help="a JSON file of inputs (name -> value), first"
    )


def _input(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: give an input as name=value")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return name.strip(), parsed


def run_command(args: argparse.Namespace) -> int:
    """Do the sub-command; exit 1 when a job failed or the service refused."""
    from lab._processes import JobStatus, processes

    client = processes(args.url, token=os.environ.get(args.token_env) or None)
    action = args.action
    if action == "list":
        found = client.list()
        if args.json:
            _print_json([p.document for p in found])
        else:
            _print_table(
                [("id", "version", "title", "execution")]
                + [(p.id, p.version, p.title, ",".join(p.job_control)) for p in found]
            )
        return 0
    if action == "describe":
        process = client.describe(args.process_id)
        if args.json:
            _print_json(process.document)
            return 0
        print(f"{process.id} {process.version}: {process.title}")
        if process.description:
            print(process.description)
        print("inputs:")
        for name, spec in process.inputs.items():
            need = "required" if name in process.required_inputs else "optional"
            print(f"  {name} ({need}): {json.dumps(spec.get('schema', {}))}")
            if spec.get("description"):
                print(f"      {spec['description']}")
        print("outputs:")
        for name, spec in process.outputs.items():
            print(f"  {name}: {json.dumps(spec.get('schema', {}))}")
        return 0
    if action == "run":
        inputs = _inputs(args.inputs_file, args.input)
        outcome = client.execute(args.process_id, inputs, asynchronous=args.asynchronous)
        if isinstance(outcome, dict):
            _print_json(outcome)
            return 0
        status = outcome.status()
        if args.json:
            _print_json(status.to_json())
        else:
            print(f"job {status.job_id}: {status.status} (earthlab process status {status.job_id})")
        return 0
    if action == "subscribe":
        inputs = _inputs(args.inputs_file, args.input)
        if args.bbox and not args.on_new_items:
            raise CommandLineError("argument --bbox: only with --on-new-items")
        search: dict[str, Any] = {"collections": args.on_new_items}
        if args.bbox:
            try:
                search["bbox"] = [float(v) for v in args.bbox.split(",")]
            except ValueError:
                raise CommandLineError(
                    f"argument --bbox: {args.bbox!r} is not W,S,E,N numbers"
                ) from None
        sub = client.subscribe(
            args.process_id,
            inputs,
            every=args.every,
            new_items=search if args.on_new_items else None,
        )
        if args.json:
            _print_json(sub)
        else:
            print(
                f"subscription {sub['id']}: {sub['status']}, {sub['message']} "
                f"(earthlab process unsubscribe {sub['id']})"
            )
        return 0
    if action == "subscriptions":
        subs = client.subscriptions()
        if args.json:
            _print_json(subs)
        else:
            _print_table(
                [("subscription", "process", "trigger", "status", "runs", "last")]
                + [
                    (
                        sub["id"],
                        sub["process"],
                        _trigger_text(sub["trigger"]),
                        sub["status"],
                        str(len(sub["jobs"])),
                        sub["message"],
                    )
                    for sub in subs
                ]
            )
        return 0
    if action == "unsubscribe":
        sub = client.unsubscribe(args.subscription_id)
        print(f"subscription {sub['id']}: {sub['status']}")
        return 0
    if action == "status":
        job = client.job(args.job_id)
        status = (
            job.wait(timeout=args.timeout, progress=not args.json) if args.wait else job.status()
        )
        if args.json:
            _print_json(status.to_json())
        else:
            _print_status(status)
        return 0 if status.status != "failed" else 1
    if action == "results":
        _print_json(client.job(args.job_id).results())
        return 0
    if action == "dismiss":
        _print_status(client.job(args.job_id).dismiss())
        return 0
    found_jobs: list[JobStatus] = client.jobs()
    if args.json:
        _print_json([s.to_json() for s in found_jobs])
    else:
        _print_table(
            [("job", "process", "status", "progress", "created")]
            + [
                (
                    s.job_id,
                    s.process_id,
                    s.status,
                    "" if s.progress is None else f"{s.progress}%",
                    s.created or "",
                )
                for s in found_jobs
            ]
        )
    return 0


def _inputs(path: str | None, given: list[tuple[str, Any]]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                loaded = json.load(f)
        except (OSError, ValueError) as exc:
            raise CommandLineError(f"argument --inputs-file: cannot read {path}: {exc}") from None
        if not isinstance(loaded, dict):
            raise CommandLineError(
                "argument --inputs-file: the file must hold a JSON object (name -> value)"
            )
        inputs.update(loaded)
    repeated: dict[str, list[Any]] = {}
    for name, value in given:
        repeated.setdefault(name, []).append(value)
    for name, values in repeated.items():
        inputs[name] = values[0] if len(values) == 1 else values
    return inputs


def _trigger_text(trigger: dict[str, Any]) -> str:
    if "every" in trigger:
        return f"every {trigger['every']:g} s"
    search = trigger.get("new_items") or {}
    return "new items of " + ",".join(search.get("collections") or ())


def _print_status(status: Any) -> None:
    progress = "" if status.progress is None else f" {status.progress}%"
    message = f": {status.message}" if status.message else ""
    print(f"job {status.job_id} ({status.process_id}): {status.status}{progress}{message}")


def _print_json(document: Any) -> None:
    def default(value: Any) -> Any:
        to_dict = getattr(value, "to_dict", None)
        return to_dict() if callable(to_dict) else str(value)

    json.dump(document, sys.stdout, indent=2, default=default)
    sys.stdout.write("\n")


def _print_table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
