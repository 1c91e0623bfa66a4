"""The mail worker killed in the middle of sending: no mail is lost.

`creditpool worker` marks a message sent in the transaction that holds it while the mail server
takes it. Killed mid-send, that transaction never commits, so the next worker sends the
message again: mail goes out at least once, and a message whose send was cut off may arrive
twice. Here the first mail server has taken the message whole and hangs before saying so, as
one that delivered it anyway would: that message arrives twice, every other once.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from creditpool.services import invitations, orgs, users
from creditpool.storage.schema import MailMessage
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.postgres import Cluster
from tests.support.server import console_script, free_port
from tests.support.smtp import Collector, SmtpServer, smtp_server

GUESTS = [f"guest{number}@durability.test" for number in range(4)]
WITHIN_SECONDS = 30.0


class HangingCollector(Collector):
    """Keeps each message it is sent, then never answers: a mail server hung in DATA."""

    def __init__(self) -> None:
        super().__init__()
        self.hung = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await super().handle_DATA(server, session, envelope)
        self.hung.set()
        await asyncio.Event().wait()  # until the server stops and cancels it
        raise AssertionError("unreachable")


@contextmanager
def running_worker(directory: Path, database: Cluster, smtp_url: str) -> Iterator[Any]:
    """Run `creditpool worker` over the durable cluster, sending through `smtp_url`."""
    directory.mkdir()
    env = {name: value for name, value in os.environ.items() if "CREDITPOOL" not in name}
    env |= {
        "CREDITPOOL_DATABASE_URL": database.url,
        "CREDITPOOL_SMTP_URL": smtp_url,
        "PYTHONUNBUFFERED": "1",
    }
    with (directory / "output.txt").open("wb") as output:
        process = subprocess.Popen(
            [console_script(), "worker"],
            cwd=directory,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def _sent(engine: Engine) -> dict[str, bool]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(MailMessage.to_address, MailMessage.sent_at).where(
                MailMessage.to_address.in_(GUESTS)
            )
        ).all()
    return {address: sent_at is not None for address, sent_at in rows}


def test_a_worker_killed_mid_send_loses_no_mail_and_sends_the_cut_off_message_again(
    tmp_path: Path, database: Cluster, durable_engine: Engine
) -> None:
    uow = UnitOfWork.for_engine(durable_engine)
    owner = users.create_user(uow, email="owner-mail@durability.test", name="Owner")
    org = orgs.create_org(uow, name="Durable mail", owner_user_id=owner.id, actor="test")
    invitations.invite_by_email(
        uow, org.id, GUESTS, public_url="http://creditpool.test", actor="test"
    )
    assert _sent(durable_engine) == dict.fromkeys(GUESTS, False)

    hanging = SmtpServer(free_port(), collector=HangingCollector())
    hanging.start()
    try:
        with running_worker(tmp_path / "first", database, hanging.url) as worker:
            assert isinstance(hanging.collector, HangingCollector)
            if not hanging.collector.hung.wait(WITHIN_SECONDS):
                raise AssertionError(
                    "the worker sent nothing within the time allowed: "
                    + (tmp_path / "first" / "output.txt").read_text()
                )
            worker.kill()  # SIGKILL, in the middle of sending
        cut_off = [address for r in hanging.received for address in r.recipients]
    finally:
        hanging.stop()
    assert len(cut_off) == 1, f"the hung server got {cut_off}: the worker sends one at a time"
    assert _sent(durable_engine) == dict.fromkeys(GUESTS, False), "a send was marked done"

    with smtp_server() as responsive, running_worker(tmp_path / "second", database, responsive.url):
        for address in GUESTS:
            responsive.wait_for(address, timeout=WITHIN_SECONDS)
        # The worker marks each sent just after the server took it: wait for the last mark.
        deadline = time.monotonic() + WITHIN_SECONDS
        while not all(_sent(durable_engine).values()) and time.monotonic() < deadline:
            time.sleep(0.1)  # another process commits it; there is no clock of ours to move
        assert _sent(durable_engine) == dict.fromkeys(GUESTS, True)
        arrived = Counter(address for r in responsive.received for address in r.recipients)

    assert arrived == Counter(GUESTS), f"each message once after the restart, got {arrived}"
    overall = arrived + Counter(cut_off)
    assert overall == Counter(GUESTS) + Counter(cut_off), overall
    assert overall[cut_off[0]] == 2, "the message cut off is sent again: at least once"
