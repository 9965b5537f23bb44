"""A Dask worker keeps to the cores its cluster options give it: a worker preload.

On one machine (``earthlab hub up``), a worker's ``worker_cores`` was only its thread count:
the threads that GDAL, BLAS or a task start were free to run anywhere, and a 1-core worker was
seen using 1.6 cores. This preload, given to ``dask worker`` by the local gateway
(``earthlab_gateway.worker_cores_args``), pins every thread of the worker process to as many
CPUs as the worker has threads, with the kernel's CPU affinity; threads and processes started
later inherit it. On Kubernetes the pod's CPU limit holds the cores instead.

Linux only (``os.sched_setaffinity``); elsewhere the worker logs that cores are not held. It
depends on the Python standard library only (it runs in the workers' environment).
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger("distributed.worker.earthlab_cores")


def choose_cpus(available: Sequence[int], cores: int, key: str) -> set[int]:
    """Return ``cores`` CPUs of ``available``, spread over workers by ``key``.

    Consecutive CPUs from a start that depends on ``key`` (the worker's name), so that the
    workers of a machine do not all take the first CPUs. All of them when ``cores`` is at least
    their number.
    """
    cpus = sorted(available)
    if cores >= len(cpus):
        return set(cpus)
    start = zlib.crc32(key.encode("utf-8")) % len(cpus)
    return {cpus[(start + i) % len(cpus)] for i in range(max(cores, 1))}


def pin_process(cpus: set[int]) -> int:
    """Set the CPU affinity of every thread of this process to ``cpus``; return how many.

    ``sched_setaffinity(0, ...)`` would pin the calling thread only: each thread of
    ``/proc/self/task`` is pinned by its id.
    """
    pinned = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
        pinned += 1
    return pinned


def dask_setup(worker: Any) -> None:
    """Pin the worker to as many CPUs as it has threads (the cluster's ``worker_cores``)."""
    if not hasattr(os, "sched_setaffinity") or not os.path.isdir("/proc/self/task"):
        logger.warning("this system has no CPU affinity: worker cores are not held")
        return
    available = sorted(os.sched_getaffinity(0))
    cpus = choose_cpus(available, int(worker.state.nthreads), str(worker.name))
    threads = pin_process(cpus)
    logger.info(
        "Worker %s held to %d of %d CPUs (%s), %d thread(s) pinned",
        worker.name,
        len(cpus),
        len(available),
        ",".join(str(c) for c in sorted(cpus)),
        threads,
    )
