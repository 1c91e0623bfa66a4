"""Gathering an org's concurrent requests into one transaction (group commit).

A transaction costs the same few round trips and one durable commit whether it charges one
request or twenty. So while an org's batches are running (at most `in_flight` at once, per
process), the requests that arrive for that org wait, and the next batch takes all of them
(at most `most`). Nothing waits on a timer: a request that finds its org idle starts at once,
alone, and only requests that would have queued for the database anyway are gathered. Each
request is answered with its own outcome, after the commit of its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from anyio import to_thread

J = TypeVar("J")
R = TypeVar("R")


@dataclass
class _Org(Generic[J, R]):
    """An org's requests waiting for a batch, and how many of its batches are running."""

    waiting: list[tuple[J, asyncio.Future[R]]] = field(default_factory=list)
    running: int = 0


class Gatherer(Generic[J, R]):
    """Runs requests (`J`) of the same org together: `run(org, jobs)`, in the thread pool,
    returns each one's result (`R`) or the exception to raise for it, in order."""

    def __init__(
        self,
        run: Callable[[str, Sequence[J]], Sequence[R | BaseException]],
        *,
        in_flight: int = 2,
        most: int = 50,
    ) -> None:
        self._run = run
        self._in_flight = in_flight
        self._most = most
        self._orgs: dict[str, _Org[J, R]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, org_id: str, job: J) -> R:
        """Run `job` in the org's next batch; return its result or raise its error."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        org = self._orgs.setdefault(org_id, _Org())
        org.waiting.append((job, future))
        if org.running < self._in_flight:
            self._start(org_id, org)
        return await future

    def _start(self, org_id: str, org: _Org[J, R]) -> None:
        batch, org.waiting = org.waiting[: self._most], org.waiting[self._most :]
        org.running += 1
        # The batch runs on its own task: a caller that goes away does not cancel the others.
        task = asyncio.get_running_loop().create_task(self._run_batch(org_id, org, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(
        self, org_id: str, org: _Org[J, R], batch: list[tuple[J, asyncio.Future[R]]]
    ) -> None:
        try:
            jobs = [job for job, _ in batch]
            outcomes: Sequence[R | BaseException] = await to_thread.run_sync(
                self._run, org_id, jobs
            )
        except Exception as error:  # the database is down, or a bug: every caller learns it
            outcomes = [error] * len(batch)
        finally:
            org.running -= 1
            if org.waiting:
                self._start(org_id, org)
            elif org.running == 0:
                self._orgs.pop(org_id, None)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # its caller went away
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
