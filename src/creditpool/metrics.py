"""What `GET /metrics` shows: Prometheus metrics of the requests, the ledger and the outbox.

Counted in the process that does the work:
- `creditpool_http_requests_total{method, route, status}` and the latency histogram
  `creditpool_http_request_duration_seconds{method, route}`, by route *template* (never a path,
  which can carry an invitation token), observed by the request log (api/request_log.py);
- `creditpool_transfers_total{kind}`: transfers written by transactions that committed. The
  ledger notes what it writes on the session (`note_transfers`); the count moves only when the
  session commits, so a rolled-back or retried transaction is not counted.

Read from the database at each scrape, so that every process and worker agree:
- the backlog of the webhook outbox, the deliveries that failed for good, and the mail not
  yet sent (services/backlog.py), as `DatabaseGauge`s passed to `exposition`.

With several server processes (`serve --workers N`), a scrape reaches one of them: serve then
sets PROMETHEUS_MULTIPROC_DIR so that each process writes its counts to a shared directory and
any of them answers with the sum (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import event
from sqlalchemy.orm import Session

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PENDING = "creditpool.transfers"  # the session's info key for transfers not yet committed

REQUESTS = Counter(
    "creditpool_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "creditpool_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
TRANSFERS = Counter(
    "creditpool_transfers",
    "Ledger transfers written by committed transactions, by kind.",
    ["kind"],
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration."""
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def note_transfers(session: Session, kinds: Iterable[str]) -> None:
    """Remember transfers of these kinds written in the session's transaction; they are
    counted when it commits."""
    pending: Tally[str] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = Tally()
    pending.update(kinds)


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    pending: Tally[str] | None = session.info.pop(_PENDING, None)
    if pending:
        for kind, count in pending.items():
            TRANSFERS.labels(kind).inc(count)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: object) -> None:
    session.info.pop(_PENDING, None)


@dataclass(frozen=True)
class DatabaseGauge:
    """A gauge read from the database at each scrape: `read(session, now)` returns (labels,
    value) pairs."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    read: Callable[[Session, datetime], Iterable[tuple[tuple[str, ...], float]]]


class _DatabaseCollector(Collector):
    """Reads its database gauges in one short transaction."""

    def __init__(
        self, sessions: Callable[[], Session], gauges: Iterable[DatabaseGauge], now: datetime
    ) -> None:
        self._sessions, self._gauges, self._now = sessions, tuple(gauges), now

    def collect(self) -> Iterator[Metric]:
        if not self._gauges:
            return
        with self._sessions() as session:
            for gauge in self._gauges:
                family = GaugeMetricFamily(gauge.name, gauge.documentation, labels=gauge.labels)
                for labels, value in gauge.read(session, self._now):
                    family.add_metric(list(labels), value)
                yield family


def exposition(
    sessions: Callable[[], Session],
    gauges: Iterable[DatabaseGauge] = (),
    now: datetime | None = None,
) -> bytes:
    """The Prometheus text of this process (or of all of serve's processes) and the
    database's gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROCESS_VARIABLE):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        counted = generate_latest(registry)
    else:
        counted = generate_latest(REGISTRY)
    database = CollectorRegistry(auto_describe=False)
    database.register(_DatabaseCollector(sessions, gauges, now or datetime.now(UTC)))
    return counted + generate_latest(database)
