"""A cluster ends itself when its gateway is gone: a Dask scheduler preload.

dask-gateway's own scheduler preload (``dask_gateway.scheduler_preload``) reports to the
gateway by heartbeats and asks the gateway to stop the cluster when it has been idle for the
idle timeout. When the gateway is dead (killed, or restarted and no longer knowing the
cluster), a failed heartbeat is retried forever, and the idle shutdown request raises, which
ends the idle check: the scheduler and its workers would run forever, unreachable (clients
reach a scheduler through the gateway's proxy).

This preload, given to the scheduler before dask-gateway's (``earthlab_gateway
.scheduler_guard_args``), wraps the scheduler's gateway client and closes the scheduler itself
(which closes its workers and their nannies) when

- the idle timeout has passed and the gateway cannot be asked to stop the cluster: the
  gateway would have stopped it anyway;
- or every heartbeat has failed for longer than :func:`unreachable_limit` (the idle timeout,
  at least :data:`MIN_UNREACHABLE` seconds): a busy cluster whose gateway went away. A gateway
  restarting for less than that (a minute or more) loses none of its clusters.

It depends on the Python standard library only (it runs in the scheduler's image).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

logger = logging.getLogger("distributed.scheduler.earthlab_guard")

#: Seconds of failed heartbeats a cluster always tolerates (a gateway restarting).
MIN_UNREACHABLE = 60.0
#: Seconds to wait for dask-gateway's preload to register its service on the scheduler.
ATTACH_TIMEOUT = 120.0


def unreachable_limit(idle_timeout: float) -> float:
    """Seconds of failed heartbeats after which a scheduler closes itself.

    The idle timeout, at least :data:`MIN_UNREACHABLE` (also when there is no idle timeout).
    """
    return max(float(idle_timeout or 0.0), MIN_UNREACHABLE)


class GuardedGateway:
    """The scheduler's gateway client, closing the scheduler when the gateway is gone.

    Parameters
    ----------
    client
        dask-gateway's ``GatewayClient`` (``heartbeat(msg)`` and ``shutdown()`` coroutines).
    close
        Called once, with the reason, to close the scheduler.
    limit
        Seconds of consecutive failed heartbeats before ``close`` is called.
    clock
        Monotonic clock, in seconds.
    """

    def __init__(
        self,
        client: Any,
        close: Any,
        limit: float,
        clock: Any = time.monotonic,
    ) -> None:
        self.client = client
        self.limit = limit
        self.failing_since: float | None = None
        self.closing = False
        self._close = close
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def heartbeat(self, msg: dict[str, Any]) -> None:
        """Send a heartbeat; after ``limit`` seconds of failures, close the scheduler."""
        try:
            await self.client.heartbeat(msg)
        except Exception as exc:
            now = self._clock()
            if self.failing_since is None:
                self.failing_since = now
            elapsed = now - self.failing_since
            if elapsed > self.limit:
                self._end(
                    f"the gateway has not answered heartbeats for {elapsed:.0f} s "
                    f"(limit {self.limit:.0f} s): {exc}"
                )
            raise
        else:
            self.failing_since = None

    async def shutdown(self) -> None:
        """Ask the gateway to stop the idle cluster; if it cannot, close the scheduler."""
        try:
            await self.client.shutdown()
        except Exception as exc:
            self._end(f"the cluster is idle and its gateway cannot stop it: {exc}")
            raise

    def _end(self, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        logger.warning("Closing the cluster: %s", reason)
        self._close(reason)


async def _attach(scheduler: Any) -> None:
    deadline = time.monotonic() + ATTACH_TIMEOUT
    while "gateway" not in scheduler.services:
        if time.monotonic() > deadline:
            logger.error("dask-gateway's service never started; the gateway guard is off")
            return
        await asyncio.sleep(0.1)
    service = scheduler.services["gateway"]
    tasks: set[asyncio.Task[None]] = set()

    def close(reason: str) -> None:
        # its own task: closing the scheduler cancels the heartbeat and idle tasks we run in
        task = asyncio.ensure_future(scheduler.close(reason=f"earthlab guard: {reason}"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    limit = unreachable_limit(service.idle_timeout)
    service.gateway = GuardedGateway(service.gateway, close, limit)
    logger.info("Gateway guard on: the cluster closes after %.0f s without its gateway", limit)


def dask_setup(scheduler: Any) -> None:
    """Preload entry point: guard the gateway client once dask-gateway's preload set it up."""
    task = asyncio.ensure_future(_attach(scheduler))
    scheduler._earthlab_guard_attach = task  # keep a reference until it is done
