"""Racing threads for the PostgreSQL concurrency tests."""

from __future__ import annotations

import threading
from collections.abc import Callable


def race(workers: list[Callable[[], None]]) -> None:
    """Start every worker at the same instant and wait for all of them."""
    start = threading.Barrier(len(workers))

    def run(work: Callable[[], None]) -> None:
        start.wait()
        work()

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
