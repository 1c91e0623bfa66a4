"""No secret reaches the server's log: the real `creditpool serve`, its stdout and stderr read.

A person signs up with a password, gets a personal token, makes an org API key, invites
someone by e-mail (the worker sends it to a real SMTP server), and people follow the mailed
invitation and the org's invite link, through the API and the pages; the vendor's product uses
the key; the owner confirms their address and resets their password by the mailed links. Every
request is logged as one line by its route template (/invitations/{token}), so the lines are
there and the secrets are not: not the passwords, the tokens, the key, the invitation token, the
invite code, the mailed links' tokens, nor anything sent in a query string. The same holds
with CREDITPOOL_LOG_FORMAT=json, where each line is a JSON object with the request's fields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.api.support import bearer, csrf_of
from tests.support.server import Server, running_server
from tests.support.smtp import SmtpServer, smtp_server

OPERATOR_KEY = "cpo-log-test-operator-key-0123456789-abcdef"
PASSWORD = "a password that must not be logged 7Q"
NEW_PASSWORD = "a new password, not logged either 3X"
OWNER = "olga.owner@example.test"
INVITEE = "iva.invited@example.test"
QUERY_SECRET = "query-string-secret-4ZK"
REQUEST_LINE = re.compile(r"\b[0-9a-f]{16} (GET|POST|PUT|PATCH|DELETE) (\S+) (\d{3}) \d+\.\dms$")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture(params=["text", "json"])
def log_format(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def site(tmp_path: Path, smtp: SmtpServer, log_format: str) -> Iterator[Server]:
    environment = {
        "CREDITPOOL_SMTP_URL": smtp.url,
        "CREDITPOOL_OPERATOR_KEY": OPERATOR_KEY,
        "CREDITPOOL_LOG_FORMAT": log_format,
    }
    with running_server(tmp_path, environment=environment) as server:
        yield server


def sign_up(api: httpx.Client, email: str, name: str) -> str:
    """Sign a person up with PASSWORD; return a personal token."""
    created = api.post("/users", json={"email": email, "password": PASSWORD, "name": name})
    assert created.status_code == 201, created.text
    issued = api.post("/tokens", json={"email": email, "password": PASSWORD})
    assert issued.status_code == 201, issued.text
    return str(issued.json()["token"])


def link_token(text: str) -> str:
    """The token at the end of the one link in a mail's text."""
    [link] = re.findall(r"https?://\S+", text)
    return str(link.rsplit("/", 1)[1])


def csrf_token(page: httpx.Response) -> str:
    return csrf_of(page.text)


def request_lines(log: str, log_format: str) -> set[tuple[str, str, int]]:
    """(method, route, status) of each request line of the log, read as the format writes it."""
    if log_format == "text":
        return {
            (match.group(1), match.group(2), int(match.group(3)))
            for match in map(REQUEST_LINE.search, log.splitlines())
            if match
        }
    assert not any(map(REQUEST_LINE.search, log.splitlines())), "a text line in a JSON log"
    found = set()
    for line in log.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            assert {"time", "level", "logger", "message"} <= record.keys(), line
            if record["logger"] == "creditpool.requests":
                assert re.fullmatch(r"[0-9a-f]{16}", record["request_id"]), line
                assert isinstance(record["duration_ms"], float), line
                found.add((record["method"], record["route"], record["status"]))
    return found


def test_the_log_has_a_line_per_request_and_no_secret(
    site: Server, smtp: SmtpServer, tmp_path: Path, log_format: str
) -> None:
    with site.client() as api, httpx.Client(base_url=site.url, timeout=10.0) as browser:
        owner_token = sign_up(api, OWNER, "Olga")
        created = api.post(
            "/orgs",
            headers=bearer(OPERATOR_KEY),
            json={"name": "Logged class", "owner_email": OWNER},
        )
        assert created.status_code == 201, created.text
        org_id, invite_code = created.json()["id"], created.json()["invite_code"]
        made = api.post(
            f"/orgs/{org_id}/api-keys",
            headers=bearer(owner_token),
            json={"name": "render farm", "scopes": ["usage"]},
        )
        assert made.status_code == 201, made.text
        api_key = made.json()["key"]

        invited = api.post(
            f"/orgs/{org_id}/invitations",
            headers=bearer(owner_token),
            json={"emails": [INVITEE]},
            params={"note": QUERY_SECRET},
        )
        assert invited.status_code == 201, invited.text
        mailed = smtp.wait_for(INVITEE)  # the worker sent it
        invitation_token = mailed.token

        # The invitee opens the mailed link in a browser, then accepts through the API.
        assert browser.get(f"/invitations/{invitation_token}").status_code == 200
        invitee_token = sign_up(api, INVITEE, "Iva")
        accepted = api.post(
            f"/invitations/{invitation_token}/accept", headers=bearer(invitee_token)
        )
        assert accepted.status_code == 201, accepted.text

        # Someone else follows the invite link in a browser, signs in there, and joins.
        joiner_token = sign_up(api, "jo.joiner@example.test", "Jo")
        assert browser.get(f"/join/{invite_code}").status_code == 200
        form = browser.get("/sign-in")
        signed_in = browser.post(
            "/sign-in",
            data={
                "csrf_token": csrf_token(form),
                "email": "jo.joiner@example.test",
                "password": PASSWORD,
            },
        )
        assert signed_in.status_code in (200, 303), signed_in.text
        joined = api.post(f"/join/{invite_code}", headers=bearer(joiner_token))
        assert joined.status_code == 201, joined.text

        # The vendor's product uses the key; a wrong token is refused (and logged as such).
        listed = api.get(f"/orgs/{org_id}/members", headers=bearer(api_key))
        assert listed.status_code == 200, listed.text
        assert api.get("/me", headers=bearer(owner_token + "x")).status_code == 401
        assert browser.get(f"/no-such-page/{QUERY_SECRET}").status_code == 404

        # The owner follows the confirmation link mailed at sign-up, then resets the password.
        confirmation = link_token(smtp.wait_for(OWNER, containing="/verify-email/").text)
        assert browser.get(f"/verify-email/{confirmation}").status_code == 303  # confirmed
        asked = api.post("/password-resets", json={"email": OWNER})
        assert asked.status_code == 202, asked.text
        reset = link_token(smtp.wait_for(OWNER, containing="/password-reset/").text)
        assert browser.get(f"/password-reset/{reset}").status_code == 200
        done = api.post(f"/password-resets/{reset}", json={"password": NEW_PASSWORD})
        assert done.status_code == 204, done.text

    site.process.terminate()
    site.process.wait(timeout=10)
    log = site.stdout() + (tmp_path / "stderr.txt").read_text()

    secrets = {
        "password": PASSWORD,
        "personal token": owner_token,
        "invitee's token": invitee_token,
        "API key": api_key,
        "invitation token": invitation_token,
        "its secret part": invitation_token.rsplit(".", 1)[1],
        "invite code": invite_code,
        "query string": QUERY_SECRET,
        "confirmation token": confirmation,
        "reset token": reset,
        "new password": NEW_PASSWORD,
    }
    for what, secret in secrets.items():
        assert secret not in log, f"the {what} is in the log:\n{log}"

    lines = request_lines(log, log_format)
    for expected in (
        ("POST", "/api/v1/users", 201),
        ("POST", "/api/v1/tokens", 201),
        ("POST", "/api/v1/orgs/{org}/api-keys", 201),
        ("POST", "/api/v1/orgs/{org}/invitations", 201),
        ("GET", "/invitations/{token}", 200),
        ("POST", "/api/v1/invitations/{token}/accept", 201),
        ("GET", "/join/{code}", 200),
        ("POST", "/sign-in", 303),
        ("POST", "/api/v1/join/{code}", 201),
        ("GET", "/api/v1/orgs/{org}/members", 200),
        ("GET", "/api/v1/me", 401),
        ("GET", "(unmatched)", 404),
        ("GET", "/verify-email/{token}", 303),
        ("POST", "/api/v1/password-resets", 202),
        ("GET", "/password-reset/{token}", 200),
        ("POST", "/api/v1/password-resets/{token}", 204),
    ):
        assert expected in lines, f"no line for {expected} in:\n{log}"
