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
from typing import Any, Generic, TypeVar

from anyio import to_thread
from fastapi import FastAPI, Request
from starlette.datastructures import State

from creditpool.services import gathered_reads, gathered_usage
from creditpool.services.gathered_usage import UsageRequest
from creditpool.services.views import UsageResult
from creditpool.storage.unit_of_work import UnitOfWork

J = TypeVar("J")
R = TypeVar("R")
A = TypeVar("A")


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
        # A caller that went away while waiting (its request cancelled) is not run at all.
        org.waiting = [(job, future) for job, future in org.waiting if not future.done()]
        batch, org.waiting = org.waiting[: self._most], org.waiting[self._most :]
        if not batch:
            if org.running == 0:
                self._orgs.pop(org_id, None)
            return
        org.running += 1
        # The batch runs on its own task: a caller that goes away does not cancel the others.
        task = asyncio.get_running_loop().create_task(self._run_batch(org_id, org, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(
        self, org_id: str, org: _Org[J, R], batch: list[tuple[J, asyncio.Future[R]]]
    ) -> None:
        outcomes: Sequence[R | BaseException] = []
        try:
            jobs = [job for job, _ in batch]
            outcomes = await to_thread.run_sync(self._run, org_id, jobs)
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} answers to {len(batch)} requests")
        except BaseException as error:  # the database is down, a bug, or the server stops
            outcomes = [error] * len(batch)
            if not isinstance(error, Exception):
                raise
        finally:
            # Every caller is answered, whatever happened.
            for (_, future), outcome in zip(batch, outcomes, strict=False):
                if future.done():  # its caller went away
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                elif isinstance(outcome, BaseException):
                    future.cancel()  # the server is stopping
                else:
                    future.set_result(outcome)
            org.running -= 1
            if org.waiting:
                self._start(org_id, org)
            elif org.running == 0:
                self._orgs.pop(org_id, None)


def _in_a_transaction(
    state: State, serve: Callable[..., list[A]]
) -> Callable[[str, Sequence[Any]], list[A]]:
    """Run a service on a batch of an org's requests, in a request's unit of work of its own."""

    def run(org_id: str, requests: Sequence[Any]) -> list[A]:
        uow = UnitOfWork(state.session_factory, state.clock, for_request=True)
        try:
            return serve(uow, org_id, requests, configured_operator_key=state.config.operator_key)
        finally:
            uow.close()

    return run


def install_gatherers(app: FastAPI) -> None:
    """Give the application its gatherers (one of each per process)."""
    # One batch of charges at a time: each credits the org's usage account last, so a second
    # batch of the same org would only wait for the first's commit to release that row.
    charges = _in_a_transaction(app.state, gathered_usage.charge_gathered)
    reads = _in_a_transaction(app.state, gathered_reads.read_gathered)
    app.state.usage_gatherer = Gatherer[UsageRequest, UsageResult](charges, in_flight=1)
    app.state.read_gatherer = Gatherer[gathered_reads.Read, gathered_reads.Answer](reads)


def usage_of(request: Request) -> Gatherer[UsageRequest, UsageResult]:
    """The gatherer of single usage charges of the application serving `request`."""
    gatherer: Gatherer[UsageRequest, UsageResult] = request.app.state.usage_gatherer
    return gatherer


def reads_of(request: Request) -> Gatherer[gathered_reads.Read, gathered_reads.Answer]:
    """The gatherer of balance reads and access checks of the application serving `request`."""
    gatherer: Gatherer[gathered_reads.Read, gathered_reads.Answer] = request.app.state.read_gatherer
    return gatherer
