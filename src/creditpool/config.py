"""Configuration, read from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

DEFAULT_DATABASE_URL = "sqlite:///creditpool.db"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
MIN_OPERATOR_KEY_LENGTH = 32
_OFF = ("0", "off", "false", "no")
_ON = ("1", "on", "true", "yes")


class ConfigError(ValueError):
    """A CREDITPOOL_* variable holds a value the service refuses to start with."""


@dataclass(frozen=True)
class Config:
    """What the service needs to know about its surroundings."""

    database_url: str = DEFAULT_DATABASE_URL
    public_url: str = DEFAULT_PUBLIC_URL  # where people reach the pages: invite links use it
    smtp_url: str | None = None  # smtp://user:password@host:port, or smtps:// for TLS
    mail_from: str = "creditpool <creditpool@localhost>"
    # Sending a password to the mail server over a connection that is not encrypted.
    smtp_allow_plaintext_auth: bool = False
    smtp_ca_file: str | None = None  # trust this CA bundle for the mail server, not the system's
    operator_key: str | None = None  # accepted as an operator key when set
    secret_key: str | None = None  # signs web sessions; else one made once, kept in the database
    # Rate limits (off for load tests): failed password checks per e-mail address in a window,
    # and anonymous requests per client address a minute.
    rate_limits: bool = True
    failed_password_limit: int = 10
    failed_password_window: timedelta = timedelta(minutes=15)
    anonymous_limit_per_minute: int = 60
    # A signed-in browser's session ends after this long unused, and this long after sign-in.
    session_idle: timedelta = timedelta(hours=24)
    session_lifetime: timedelta = timedelta(days=14)
    max_body_bytes: int = 1024 * 1024  # larger request bodies are refused with 413
    # Stripe Checkout, for owners buying credits: both keys set turn it on.
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None  # verifies POST /api/v1/webhooks/stripe
    credit_price: int = 100  # the price of one credit in the currency's minor units (cents)
    currency: str = "usd"
    stripe_api_base: str | None = None  # Stripe's API by default; a stand-in's URL in tests
    log_format: str = "text"  # or "json": one JSON object a line
    metrics_token: str | None = None  # when set, GET /metrics wants it as a bearer token
    # Webhooks may be sent to loopback, private and link-local addresses (an installation
    # whose endpoints sit on its own network); off, an owner cannot aim them inside it.
    webhook_private_networks: bool = False

    @property
    def https(self) -> bool:
        """Whether people reach the service over https (cookies are then Secure, HSTS sent)."""
        return self.public_url.startswith("https://")

    @property
    def checkout(self) -> bool:
        """Whether owners can buy credits through Stripe Checkout (both Stripe keys are set)."""
        return bool(self.stripe_secret_key and self.stripe_webhook_secret)

    @classmethod
    def from_environment(cls) -> Config:
        """Return the configuration the CREDITPOOL_* variables describe.

        Raises ConfigError for a value the service must not start with.
        """
        env = os.environ
        operator_key = env.get("CREDITPOOL_OPERATOR_KEY") or None
        if operator_key is not None and len(operator_key) < MIN_OPERATOR_KEY_LENGTH:
            raise ConfigError(
                f"CREDITPOOL_OPERATOR_KEY must be at least {MIN_OPERATOR_KEY_LENGTH} characters "
                "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return cls(
            database_url=env.get("CREDITPOOL_DATABASE_URL", DEFAULT_DATABASE_URL),
            public_url=env.get("CREDITPOOL_PUBLIC_URL", DEFAULT_PUBLIC_URL).rstrip("/"),
            smtp_url=env.get("CREDITPOOL_SMTP_URL") or None,
            mail_from=env.get("CREDITPOOL_MAIL_FROM", cls.mail_from),
            smtp_allow_plaintext_auth=_flag(env, "CREDITPOOL_SMTP_ALLOW_PLAINTEXT_AUTH", False),
            smtp_ca_file=env.get("CREDITPOOL_SMTP_CA_FILE") or None,
            operator_key=operator_key,
            secret_key=env.get("CREDITPOOL_SECRET_KEY") or None,
            rate_limits=_flag(env, "CREDITPOOL_RATE_LIMITS", True),
            failed_password_limit=_positive(env, "CREDITPOOL_FAILED_PASSWORD_LIMIT", 10),
            anonymous_limit_per_minute=_positive(env, "CREDITPOOL_ANONYMOUS_LIMIT", 60),
            session_idle=timedelta(hours=_positive(env, "CREDITPOOL_SESSION_IDLE_HOURS", 24)),
            session_lifetime=timedelta(days=_positive(env, "CREDITPOOL_SESSION_DAYS", 14)),
            max_body_bytes=_positive(env, "CREDITPOOL_MAX_BODY_BYTES", cls.max_body_bytes),
            stripe_secret_key=env.get("CREDITPOOL_STRIPE_SECRET_KEY") or None,
            stripe_webhook_secret=env.get("CREDITPOOL_STRIPE_WEBHOOK_SECRET") or None,
            credit_price=_positive(env, "CREDITPOOL_CREDIT_PRICE", cls.credit_price),
            currency=_currency(env),
            stripe_api_base=env.get("CREDITPOOL_STRIPE_API_BASE") or None,
            log_format=_one_of(env, "CREDITPOOL_LOG_FORMAT", ("text", "json")),
            metrics_token=env.get("CREDITPOOL_METRICS_TOKEN") or None,
            webhook_private_networks=_flag(env, "CREDITPOOL_WEBHOOK_PRIVATE_NETWORKS", False),
        )


def _flag(env: os._Environ[str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in _OFF:
        return False
    if value in _ON:
        return True
    raise ConfigError(f"{name} is on or off, not {value!r}")


def _positive(env: os._Environ[str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{name} is a whole number of at least 1, not {value!r}")
    return int(value)


def _one_of(env: os._Environ[str], name: str, choices: tuple[str, ...]) -> str:
    """The variable's value, one of `choices` (the first when unset)."""
    value = env.get(name, "").strip().lower()
    if not value:
        return choices[0]
    if value not in choices:
        raise ConfigError(f"{name} is one of {', '.join(choices)}, not {value!r}")
    return value


def _currency(env: os._Environ[str]) -> str:
    """CREDITPOOL_CURRENCY: an ISO 4217 code, lower-cased as Stripe writes it (usd)."""
    value = env.get("CREDITPOOL_CURRENCY", "").strip().lower() or "usd"
    if len(value) != 3 or not value.isascii() or not value.isalpha():
        raise ConfigError(f"CREDITPOOL_CURRENCY is a three-letter currency code, not {value!r}")
    return value
