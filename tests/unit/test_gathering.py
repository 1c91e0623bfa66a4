"""The gatherer (api/gathering.py) on its own: requests of one org that arrive while its batch
runs go together in the next batch, each caller gets its own answer or error, and a caller
that went away while waiting is not run."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from creditpool.api.gathering import Gatherer


def test_waiting_requests_go_together_and_each_gets_its_own_answer() -> None:
    batches: list[list[int]] = []
    release = threading.Event()

    def run(org_id: str, jobs: Sequence[int]) -> list[int | BaseException]:
        if not batches:
            release.wait(5)  # the first batch runs until the others have queued
        batches.append(list(jobs))
        return [ValueError(f"odd {job}") if job % 2 else job * 10 for job in jobs]

    async def scenario() -> list[object]:
        gatherer: Gatherer[int, int] = Gatherer(run, in_flight=1)
        first = asyncio.ensure_future(gatherer.submit("org", 0))
        await asyncio.sleep(0.05)
        later = [asyncio.ensure_future(gatherer.submit("org", job)) for job in range(1, 6)]
        await asyncio.sleep(0.05)
        later[1].cancel()  # job 2's caller goes away while it waits
        release.set()
        return await asyncio.gather(first, *later, return_exceptions=True)

    answers = asyncio.run(scenario())
    assert batches == [[0], [1, 3, 4, 5]]  # job 2 was never run
    assert answers[0] == 0
    assert [str(a) for a in answers[1:]] == ["odd 1", "", "odd 3", "40", "odd 5"]
    assert isinstance(answers[2], asyncio.CancelledError)


def test_a_failing_batch_fails_each_of_its_callers() -> None:
    def run(org_id: str, jobs: Sequence[int]) -> list[int | BaseException]:
        raise ConnectionError("the database is down")

    async def scenario() -> list[object]:
        gatherer: Gatherer[int, int] = Gatherer(run)
        calls = [gatherer.submit("org", job) for job in range(3)]
        return await asyncio.gather(*calls, return_exceptions=True)

    answers = asyncio.run(scenario())
    assert [type(answer) for answer in answers] == [ConnectionError] * 3


def test_a_wrong_number_of_answers_reaches_no_caller_as_an_answer() -> None:
    def run(org_id: str, jobs: Sequence[int]) -> list[int | BaseException]:
        return list(jobs)[1:]  # one answer short: none may go to the wrong caller

    async def scenario() -> list[object]:
        gatherer: Gatherer[int, int] = Gatherer(run)
        return await asyncio.gather(gatherer.submit("org", 7), return_exceptions=True)

    (answer,) = asyncio.run(scenario())
    with pytest.raises(RuntimeError, match="0 answers to 1 requests"):
        raise answer  # type: ignore[misc]
