"""The API keeps to its OpenAPI document, whatever it is sent: schemathesis over every operation.

For each operation of `/api/v1/openapi.json`, Hypothesis draws requests that fit the document
(positive) and requests that break it (negative), sent as the operator to the in-process app. Path
ids are the world's real ones where the operation names one (the org always), so that requests
reach past "no such org" into the handlers. Every response must:

- not be a server error (no 5xx);
- have a status code the document lists for the operation;
- have a body that fits the document's schema for that status.

Runs on SQLite only (the document is the same on both engines) with few examples per operation and
a fixed seed, so that the suite stays fast and a failure is the same on every run. Failures are
gathered across operations and reported together, each with the request that caused it.
"""

from __future__ import annotations

import re
from typing import Any

import httpx2 as httpx
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup

from creditpool.services import mail
from creditpool.storage.unit_of_work import UnitOfWork
from tests.api.support import OPERATOR_KEY, World

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)

EXAMPLES_PER_MODE = 5  # per operation, once with data that fits the document and once without
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _real_ids(world: World, app: FastAPI) -> dict[str, str]:
    """Real values for each path parameter the document names."""
    api, org, operator = world.api, world.org_id, world.operator

    def made(method: str, path: str, body: Any = None) -> Any:
        response = api.call(method, path, token=operator, json=body)
        assert response.is_success, response.text
        return response.json()

    student = world.student_ids[0]
    webhook = made(
        "POST",
        f"/orgs/{org}/webhooks",
        {"url": "https://vendor.example/hooks", "events": ["allocation.created"]},
    )["id"]
    made("POST", f"/orgs/{org}/allocations", {"member_ids": [student], "amount": "10"})
    delivery = made("GET", f"/orgs/{org}/webhooks/{webhook}/deliveries")["items"][0]["id"]
    hold = made("POST", f"/orgs/{org}/members/{student}/holds", {"amount": "1"})["id"]
    group = made("POST", f"/orgs/{org}/groups", {"name": "Monday"})["id"]
    key = made("POST", f"/orgs/{org}/api-keys", {"name": "spare", "scopes": ["usage"]})["id"]
    invited = "fuzz-invitee@example.test"
    invitation = made("POST", f"/orgs/{org}/invitations", {"emails": [invited]})["items"][0]["id"]
    _, body, _ = mail.outbox_for(UnitOfWork(app.state.session_factory, app.state.clock), invited)[
        -1
    ]
    found = re.search(r"/invitations/(\S+)", body)
    assert found is not None, body
    return {
        "org": org,
        "member": student,
        "hold": hold,
        "group": group,
        "key": key,
        "invitation": invitation,
        "webhook": webhook,
        "delivery": delivery,
        "code": world.org["invite_code"],
        "token": found.group(1),  # of /invitations/{token}/accept; /tokens/{token} gets it too
    }


def _send(client: TestClient, case: schemathesis.Case, headers: dict[str, str]) -> httpx.Response:
    """Send a case through the test client, so that a crash comes back as a 500 response."""
    sent = case.as_transport_kwargs(base_url=str(client.base_url), headers=headers)
    assert not sent.get("cookies"), sent
    body: dict[str, Any] = {}
    if "json" in sent:
        body["json"] = sent["json"]
    elif sent.get("data") is not None:
        data = sent["data"]
        body["content"] = data if isinstance(data, bytes) else str(data).encode()
    return client.request(
        sent["method"], sent["url"], headers=sent["headers"], params=sent.get("params"), **body
    )


def _describe(response: httpx.Response) -> str:
    """The request as it was sent, in one line."""
    request = response.request
    parts = [f"{request.method} {request.url}"]
    authorization = request.headers.get("authorization")
    parts.append(
        "as the operator"
        if authorization == f"Bearer {OPERATOR_KEY}"
        else f"Authorization={authorization!r}"
    )
    if "idempotency-key" in request.headers:
        parts.append(f"Idempotency-Key={request.headers['idempotency-key']!r}")
    if request.content:
        parts.append(f"body={request.content[:300]!r}")
    return " ".join(parts)


def _problem_shape(response: httpx.Response) -> str | None:
    """What is wrong with an error response's body, by the API's conventions; None if nothing."""
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return f"content-type {response.headers.get('content-type')!r}"
    try:
        body = response.json()
    except ValueError:
        return f"a body that is not JSON: {response.text[:100]!r}"
    if not isinstance(body, dict):
        return f"a body that is not an object: {body!r:.100}"
    missing = {"type", "title", "status", "detail", "code"} - set(body)
    if missing:
        return f"no {sorted(missing)}"
    if body["status"] != response.status_code or not re.fullmatch(
        r"[a-z]+(_[a-z]+)*", body["code"]
    ):
        return f"status {body['status']!r}, code {body['code']!r}"
    return None


def test_every_operation_keeps_to_the_openapi_document(
    world: World, app: FastAPI, client: TestClient
) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    ids = _real_ids(world, app)
    auth = {"Authorization": f"Bearer {world.operator}"}
    failures: dict[tuple[str, str], str] = {}
    statuses: dict[str, set[int]] = {}

    def _outcome(response: httpx.Response) -> str:
        return f"{_describe(response)} -> {response.status_code} {response.text[:300]}"

    def exercise(operation: schemathesis.APIOperation, mode: GenerationMode) -> None:
        names = re.findall(r"{(\w+)}", operation.path)
        real = {name: ids[name] for name in names if name in ids}
        strategies = [operation.as_strategy(mode, path_parameters=real or None)]
        if real.keys() - {"org"}:
            # Ids other than the org's: the real one sometimes, a drawn one otherwise.
            org = {"org": ids["org"]} if "org" in real else None
            strategies.append(operation.as_strategy(mode, path_parameters=org))
        strategy = st.one_of(strategies)

        @settings(
            max_examples=EXAMPLES_PER_MODE,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: schemathesis.Case) -> None:
            response = _send(client, case, auth)
            statuses.setdefault(operation.label, set()).add(response.status_code)
            try:
                case.validate_response(response, checks=CHECKS, headers=auth)
            except (Failure, FailureGroup) as error:
                found = error.exceptions if isinstance(error, FailureGroup) else [error]
                for failure in found:
                    title = getattr(failure, "title", type(failure).__name__)
                    failures.setdefault((operation.label, str(title)), _outcome(response))
            if response.status_code >= 400:
                wrong = _problem_shape(response)
                if wrong is not None:
                    failures.setdefault(
                        (operation.label, f"not a problem: {wrong}"), _outcome(response)
                    )

        run()

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            exercise(operation, mode)

    report = "\n".join(
        f"{label}: {title}\n    {request}" for (label, title), request in sorted(failures.items())
    )
    assert not failures, f"{len(failures)} kinds of failure:\n{report}"
    # Every operation was reached, and answered at least once past "who are you" and "no such
    # thing": the real ids and the operator's token got the requests into the handlers.
    assert len(statuses) == len(list(schema.get_all_operations()))
    shallow = sorted(label for label, codes in statuses.items() if codes <= {401, 404})
    assert not shallow, shallow


def test_errors_are_documented_as_problem_json(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    problem = {"$ref": "#/components/schemas/Problem"}
    wrong = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                if not status.startswith("4"):
                    continue
                content = answer.get("content", {})
                schema = content.get("application/problem+json", {}).get("schema")
                if set(content) != {"application/problem+json"} or schema != problem:
                    wrong.append(f"{method.upper()} {path} {status}: {content}")
    assert not wrong, "\n".join(wrong[:5])
