"""Concurrent clients writing to a real server, and what they were told.

Each client charges usage (with the org's API key), allots and revokes (with the owner's
token), every write under an idempotency key of its own. Every request is kept with its
answers: the first one, then those of retries with the same key. A request "got no answer"
when the connection failed or timed out; 503 is an answer, but not a final one.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2 as httpx

from creditpool.domain.amounts import credits
from tests.api.support import bearer

CLIENTS = 16
# A client that got no answer, or a 503, sends the same write again with the same key after
# this long (shorter than the server's Retry-After, to keep the test short).
BACKOFF_SECONDS = 0.5
# How long a client waits for an answer; one slower than ANSWER_WITHIN counts as a hang.
CLIENT_TIMEOUT_SECONDS = 16.0
USAGE, ALLOT, REVOKE = "usage", "allot", "revoke"
AMOUNTS = {USAGE: "0.01", ALLOT: "1", REVOKE: "0.5"}
# What each client sends, by weight: mostly usage, as a product would.
MIX = [(USAGE, 6), (ALLOT, 3), (REVOKE, 2)]
T = TypeVar("T")


@dataclass(frozen=True)
class Org:
    """An org set up for the load: who may do what, and its students' member ids."""

    id: str
    owner_token: str
    usage_key: str
    students: list[str]


@dataclass(frozen=True)
class Write:
    """One write a client sends, always under its own idempotency key."""

    key: str
    kind: str
    member_id: str
    path: str
    body: dict[str, Any]
    token: str

    @property
    def amount(self) -> int:
        """The amount it moves, in micro-credits."""
        return credits(AMOUNTS[self.kind])


@dataclass(frozen=True)
class Answer:
    """What one attempt got: a status and body, or no answer at all."""

    status: int | None
    body: Any
    headers: dict[str, str]
    error: str | None  # why there was no answer
    started: float  # time.monotonic() when sent
    seconds: float  # how long until the answer (or the failure)

    @property
    def final(self) -> bool:
        """Whether this answer settles the write: anything but no answer or 503."""
        return self.status is not None and self.status != 503

    def describe(self) -> str:
        """A line for failure messages."""
        if self.status is None:
            return f"no answer after {self.seconds:.2f} s ({self.error})"
        return f"{self.status} after {self.seconds:.2f} s: {str(self.body)[:300]}"


@dataclass
class Outcome:
    """A write and every answer it got, first the original, then the retries."""

    write: Write
    answers: list[Answer] = field(default_factory=list)

    @property
    def first(self) -> Answer:
        """The answer to the request as first sent."""
        return self.answers[0]

    @property
    def final(self) -> Answer | None:
        """The answer that settled it, if one did."""
        return self.answers[-1] if self.answers[-1].final else None

    def identity(self) -> str | None:
        """What the write made, as its answer names it: a transfer id or a batch id."""
        settled = self.final
        if settled is None or settled.status != 201:
            return None
        body = settled.body
        return str(body["transfer"]["id"] if self.write.kind == USAGE else body["batch_id"])

    def describe(self) -> str:
        """Lines for failure messages."""
        tries = "; ".join(answer.describe() for answer in self.answers)
        return f"{self.write.kind} {self.write.key}: {tries}"


def send(http: httpx.Client, write: Write) -> Answer:
    """Send a write once; return what came back, or that nothing did."""
    headers = bearer(write.token) | {"Idempotency-Key": write.key}
    started = time.monotonic()
    try:
        response = http.post(write.path, json=write.body, headers=headers)
    except httpx.TransportError as error:
        return Answer(None, None, {}, repr(error), started, time.monotonic() - started)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return Answer(
        response.status_code,
        body,
        dict(response.headers),
        None,
        started,
        time.monotonic() - started,
    )


def make_write(org: Org, kind: str, key: str, member_id: str) -> Write:
    """The request body and caller for one write of `kind`."""
    amount = AMOUNTS[kind]
    if kind == USAGE:
        path = f"/orgs/{org.id}/members/{member_id}/usage"
        # The key as the reference: the ledger shows which request each charge came from.
        body: dict[str, Any] = {"amount": amount, "metrics": {"renders": 1}, "reference": key}
        return Write(key, kind, member_id, path, body, org.usage_key)
    path = f"/orgs/{org.id}/{'allocations' if kind == ALLOT else 'revocations'}"
    body = {"member_ids": [member_id], "amount": amount}
    return Write(key, kind, member_id, path, body, org.owner_token)


class Load:
    """CLIENTS threads writing to `base_url` as fast as they are answered, until stopped.

    A client sends its next write once the last one is settled; until then it sends it again,
    with its key, every BACKOFF_SECONDS. Stopped, it leaves its last write as it stands.
    """

    def __init__(self, base_url: str, org: Org, label: str, *, seed: int = 0) -> None:
        self._base_url, self._org, self._label, self._seed = base_url, org, label, seed
        self._stopping = threading.Event()
        self._outcomes: list[list[Outcome]] = [[] for _ in range(CLIENTS)]
        self._threads = [
            threading.Thread(target=self._client, args=(number,), daemon=True)
            for number in range(CLIENTS)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _client(self, number: int) -> None:
        chooser = random.Random(f"{self._seed}-{number}")
        kinds, weights = zip(*MIX, strict=True)
        with httpx.Client(base_url=self._base_url, timeout=CLIENT_TIMEOUT_SECONDS) as http:
            sent = 0
            while not self._stopping.is_set():
                sent += 1
                kind = chooser.choices(kinds, weights)[0]
                member = chooser.choice(self._org.students)
                key = f"{self._label}-client{number}-{sent}"
                write = make_write(self._org, kind, key, member)
                outcome = Outcome(write, [send(http, write)])
                self._outcomes[number].append(outcome)
                while outcome.final is None and not self._stopping.wait(BACKOFF_SECONDS):
                    outcome.answers.append(send(http, write))

    def answered(self) -> int:
        """How many writes have had a first answer so far (roughly: the lists grow meanwhile)."""
        return sum(len(outcomes) for outcomes in self._outcomes)

    def wait_for_answers(self, count: int, *, within: float = 20.0) -> None:
        """Wait until `count` writes have had a first answer."""
        deadline = time.monotonic() + within
        while self.answered() < count:
            assert time.monotonic() < deadline, f"only {self.answered()} answers in {within} s"
            time.sleep(0.05)  # other processes answer; there is no clock of ours to move

    def stop(self) -> list[Outcome]:
        """Stop every client after its current request; return every outcome."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=CLIENT_TIMEOUT_SECONDS + 5)
            assert not thread.is_alive(), "a client is still waiting for an answer"
        return [outcome for outcomes in self._outcomes for outcome in outcomes]


def settle(base_url: str, outcomes: list[Outcome], *, within: float = 30.0) -> list[Outcome]:
    """Retry, with the same key, every write not settled yet, until each is; return those."""
    pending = [outcome for outcome in outcomes if outcome.final is None]
    deadline = time.monotonic() + within

    def retry(http: httpx.Client, outcome: Outcome) -> None:
        while outcome.final is None and time.monotonic() < deadline:
            if len(outcome.answers) > 1:
                time.sleep(BACKOFF_SECONDS)  # the server or the database is still coming back
            outcome.answers.append(send(http, outcome.write))

    _in_parallel(base_url, pending, retry)
    unsettled = [outcome for outcome in pending if outcome.final is None]
    listed = "\n".join(outcome.describe() for outcome in unsettled[:10])
    assert not unsettled, f"{len(unsettled)} writes unsettled after {within} s:\n{listed}"
    return pending


def replay(base_url: str, outcomes: list[Outcome]) -> list[tuple[Outcome, Answer]]:
    """Send each write once more with its key; return each with the replay's answer."""

    def again(http: httpx.Client, outcome: Outcome) -> tuple[Outcome, Answer]:
        return outcome, send(http, outcome.write)

    return _in_parallel(base_url, outcomes, again)


def _in_parallel(
    base_url: str, outcomes: list[Outcome], work: Callable[[httpx.Client, Outcome], T]
) -> list[T]:
    """Do `work` for each outcome, CLIENTS at a time, each thread with a client of its own."""

    def run(share: list[Outcome]) -> list[T]:
        with httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT_SECONDS) as http:
            return [work(http, outcome) for outcome in share]

    shares = [outcomes[start::CLIENTS] for start in range(CLIENTS)]
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        return [done for finished in pool.map(run, shares) for done in finished]
