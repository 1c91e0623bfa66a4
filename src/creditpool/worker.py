"""The background worker: the jobs that time, not requests, makes due.

Every few seconds it sends the mail that is due (retrying failures later), sends the webhook
deliveries that are due (services/webhook_delivery.py: several workers, in this process or
others, never send one delivery at once), announces low-credit alerts as the seat burn crosses
them, settles the period boundaries of budgets per period and the lot expiries that have passed
(services/periods.py: requests settle them too, whichever comes first), announces the lots that
expire within a week (services/lot_events.py), marks expired holds as expired, and forgets
idempotency and usage-event keys past their retention. `serve` runs it in a thread of its own
process, once however many server processes it starts (a request in the same process wakes it
when it queues mail); `creditpool worker --once` runs one pass (for cron, or tests).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from creditpool.config import Config
from creditpool.mailer import sender_for
from creditpool.services import (
    alerts,
    holds,
    idempotency,
    lot_events,
    mail,
    periods,
    rate_limits,
    sessions,
    user_links,
    webhook_delivery,
)
from creditpool.services.mail import MailSender
from creditpool.storage.unit_of_work import UnitOfWork

logger = logging.getLogger("creditpool.worker")
INTERVAL_SECONDS = 5.0


@dataclass(frozen=True)
class PassReport:
    """What one pass did."""

    mail_sent: int
    mail_failed: int
    holds_expired: int
    keys_forgotten: int
    webhooks_succeeded: int = 0
    webhook_attempts_failed: int = 0
    alerts_changed: int = 0
    periods_settled: int = 0  # orgs whose period boundary this pass settled
    lots_warned: int = 0  # lots announced as expiring within a week


def run_once(uow: UnitOfWork, config: Config, send: MailSender | None = None) -> PassReport:
    """Do every due job once; mail goes through `send`, or else the server `config` names."""
    sent = failed = 0
    send = send or sender_for(config)
    if send is not None:
        report = mail.deliver_due(uow, send)
        sent, failed = report.sent, report.failed
    # Webhook deliveries that are due (new events, retries, leases run out), signed and sent.
    webhooks = webhook_delivery.deliver_due(uow, private_networks=config.webhook_private_networks)
    # The seat burn lowers pools with time, not only by writes: announce the crossings.
    alerts_changed = alerts.sweep(uow)
    # Budgets per period: boundaries passed that no request has settled yet.
    settled = periods.sweep(uow)
    # Lots whose week before expiry has begun: `credits.expiring`, once each.
    warned = lot_events.warn_expiring(uow)
    expired = holds.expire_holds(uow)
    forgotten = idempotency.forget_expired_keys(uow)
    # Rate-limit windows are over once older than the longest window: forget them.
    longest = max(config.failed_password_window, rate_limits.ANONYMOUS_WINDOW)
    rate_limits.purge_old_windows(uow, longest)
    # Sessions and mailed links that can never work again: nothing to keep them for.
    sessions.forget_dead_sessions(uow, idle=config.session_idle)
    user_links.forget_old_links(uow)
    return PassReport(
        sent,
        failed,
        expired,
        forgotten,
        webhooks.succeeded,
        webhooks.failed_attempts,
        alerts_changed,
        settled.orgs,
        warned,
    )


class Worker(threading.Thread):
    """Runs `run_once` every few seconds until stopped; a failing pass is logged, not fatal."""

    def __init__(self, uow: UnitOfWork, config: Config, interval: float = INTERVAL_SECONDS):
        super().__init__(name="creditpool-worker", daemon=True)
        self._uow, self._config, self._interval = uow, config, interval
        # Made now so that a mail setting the service refuses stops it at start (ConfigError).
        self._send = sender_for(config)
        self._stopping = threading.Event()
        self._wake = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                run_once(self._uow, self._config, self._send)
            except Exception:
                logger.exception("a worker pass failed; trying again later")
            self._wake.wait(self._interval)
            self._wake.clear()

    def wake(self) -> None:
        """Run the next pass now (after a request queued mail, say)."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the current pass and stop."""
        self._stopping.set()
        self._wake.set()
