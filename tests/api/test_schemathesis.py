"""The API and its OpenAPI document agree: schemathesis, with every check it has, over every
operation of `/api/v1/openapi.json`, on both engines.

This is `schemathesis run --checks all` against the in-process application. Its engine runs
each phase: the document's examples; coverage (values at and just past each bound the document
sets, each required part left out, methods a path does not take); fuzzing, with data that fits
the document and data that does not; stateful, chains of calls through the links it infers. Every
check runs: no 5xx; statuses, content types, headers and bodies as documented; data that does
not fit refused; 405 with an `Allow` naming the path's methods; auth enforced where the document
asks for it; nothing found after it was deleted, nothing missing right after it was made. Two
checks of ours join them: every error is problem+json with a stable `code`; and data that fits
is accepted, unless the refusal depends on what the server holds, which no document can say
(STATE_REFUSALS, each named and narrow: schemathesis's own check is off in its favour).

Requests come from the operator, or from a signed-in user for the calls that are a user's own,
with real ids in the paths, so that they reach past "no such thing" into the handlers. Few
examples and a fixed seed: a failure is the same on every run, and the file stays fast.
`schemathesis run URL/api/v1/openapi.json --checks all` against a served instance does all of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure
from schemathesis.engine import events, from_schema
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from creditpool.services import mail
from creditpool.storage.unit_of_work import UnitOfWork
from tests.api.support import PASSWORD, World, problem

SEED = 20261202
EXAMPLES = 4  # per operation and mode in the fuzzing phase
STATEFUL_STEPS = 20
DELETABLE = ("group", "key", "invitation", "hold")


@dataclass(frozen=True)
class StateRefusal:
    """A refusal of data that fits the document, for a reason the document cannot state."""

    operations: frozenset[str]  # labels; empty: any operation
    code: str
    detail: str  # how the detail begins
    why: str


STATE_REFUSALS = (
    StateRefusal(
        frozenset(),
        "idempotency_mismatch",
        "",
        "an Idempotency-Key the caller used before, on another call or with another body",
    ),
    StateRefusal(
        frozenset({"GET /api/v1/orgs/{org}/balance"}),
        "validation_error",
        "a balance can be read now or in the future",
        "`at` before the server's now: no schema can name the present",
    ),
    StateRefusal(
        frozenset({"POST /api/v1/orgs/{org}/purchases"}),
        "validation_error",
        "expires_at must be in the future",
        "a lot's `expires_at` before the server's now: no schema can name the present",
    ),
    StateRefusal(
        frozenset({"POST /api/v1/orgs", "POST /api/v1/orgs/{org}/children"}),
        "validation_error",
        "no user with e-mail",
        "an owner_email that no user signed up with",
    ),
    StateRefusal(
        frozenset({"POST /api/v1/orgs/{org}/children"}),
        "validation_error",
        "an org at level 3 cannot have children",
        "a child of an org three levels down: a family is three levels deep at most",
    ),
    StateRefusal(
        frozenset({"GET /api/v1/orgs/{org}/groups"}),
        "validation_error",
        "the cursor names a group deleted since",
        "a cursor that no page gave",
    ),
    StateRefusal(
        frozenset(
            {
                "POST /api/v1/orgs",
                "POST /api/v1/orgs/{org}/children",
                "PATCH /api/v1/orgs/{org}/settings",
            }
        ),
        "invalid_policy",
        "the maximum per member must be a multiple of the bundle",
        "a cap that is no multiple of the bundle (the one sent, or the org's)",
    ),
    StateRefusal(
        frozenset(
            {
                "POST /api/v1/orgs",
                "POST /api/v1/orgs/{org}/children",
                "PATCH /api/v1/orgs/{org}/settings",
            }
        ),
        "validation_error",
        "unknown time zone",
        "a time zone the zone database does not name: its list changes with each tzdata "
        "release, so the document gives only the shape of a name",
    ),
)


def _problem_code(response: Any) -> tuple[str, str] | None:
    """The `code` and `detail` of a problem+json body, or None."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    return str(body.get("code")), str(body.get("detail"))


def refused_for_state(response: Any, case: schemathesis.Case) -> StateRefusal | None:
    """The STATE_REFUSALS entry a 422 answer is, if any."""
    if response.status_code != 422:
        return None
    problem = _problem_code(response)
    if problem is None:
        return None
    code, detail = problem
    for refusal in STATE_REFUSALS:
        if (
            (not refusal.operations or case.operation.label in refusal.operations)
            and code == refusal.code
            and detail.startswith(refusal.detail)
        ):
            return refusal
    return None


@schemathesis.check
def fitting_data_accepted_unless_state_refuses(
    ctx: Any, response: Any, case: schemathesis.Case
) -> bool | None:
    """positive_data_acceptance, but for the refusals listed in STATE_REFUSALS."""
    if refused_for_state(response, case) is not None:
        return None
    return positive_data_acceptance(ctx, response, case)  # type: ignore[no-any-return]


@schemathesis.check
def errors_are_problem_json(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """Every 4xx and 5xx answer is application/problem+json with the API's fields."""
    if response.status_code < 400:
        return None
    wrong = _problem_shape(response)
    if wrong is not None:
        raise Failure(operation=case.operation.label, title="Not a problem+json", message=wrong)
    return None


def _problem_shape(response: Any) -> str | None:
    """What is wrong with an error response's body, by the API's conventions; None if nothing."""
    content_type = response.headers.get("content-type", "")
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    if not content_type.startswith("application/problem+json"):
        return f"content-type {content_type!r}"
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
        r"[a-z]+(_[a-z]+)*", str(body["code"])
    ):
        return f"status {body['status']!r}, code {body['code']!r}"
    return None


@dataclass(frozen=True)
class Cast:
    """The real values the fuzzer is given: path ids, and a user of its own."""

    ids: dict[str, str]
    user_token: str
    spare_token_id: str
    reset_token: str
    invitation_token: str


def _mailed_token(app: FastAPI, to: str, path: str) -> str:
    """The secret of the last link to `path` mailed to `to`."""
    uow = UnitOfWork(app.state.session_factory, app.state.clock)
    bodies = [body for _, body, _ in mail.outbox_for(uow, to)]
    found = [match.group(1) for body in bodies for match in re.finditer(rf"/{path}/(\S+)", body)]
    assert found, bodies
    return found[-1]


def _cast(world: World, app: FastAPI) -> Cast:
    """Make what the paths name: a hold, a group, a key, an invitation, a user of the fuzzer."""
    api, org, operator = world.api, world.org_id, world.operator

    def made(method: str, path: str, body: Any = None, token: str | None = operator) -> Any:
        response = api.call(method, path, token=token, json=body)
        assert response.is_success, response.text
        return response.json()

    student = world.student_ids[0]
    made("POST", f"/orgs/{org}/allocations", {"member_ids": [student], "amount": "10"})
    hold = made("POST", f"/orgs/{org}/members/{student}/holds", {"amount": "1"})["id"]
    group = made("POST", f"/orgs/{org}/groups", {"name": "Monday"})["id"]
    key = made("POST", f"/orgs/{org}/api-keys", {"name": "spare", "scopes": ["usage"]})["id"]
    # The fuzzer's own user: invited (it accepts), with a token to use and one to revoke.
    email = "fuzzer@example.test"
    made("POST", "/users", {"email": email, "password": PASSWORD, "name": "Fuzzer"}, token=None)
    token = made("POST", "/tokens", {"email": email, "password": PASSWORD}, token=None)["token"]
    spare = made("POST", "/tokens", {"email": email, "password": PASSWORD}, token=None)["id"]
    invitation = made("POST", f"/orgs/{org}/invitations", {"emails": [email]})["items"][0]["id"]
    # A reset signs its user out everywhere: the link the fuzzer follows is another user's.
    other = "fuzzer-reset@example.test"
    made("POST", "/users", {"email": other, "password": PASSWORD, "name": "Reset"}, token=None)
    assert api.call("POST", "/password-resets", json={"email": other}).status_code == 202
    return Cast(
        ids={
            "org": org,
            "member": student,
            "hold": hold,
            "group": group,
            "key": key,
            "invitation": invitation,
            "code": world.org["invite_code"],
        },
        user_token=token,
        spare_token_id=spare,
        reset_token=_mailed_token(app, other, "password-reset"),
        invitation_token=_mailed_token(app, email, "invitations"),
    )


def _config(world: World, cast: Cast) -> SchemathesisConfig:
    """`schemathesis run --checks all` with few examples, a fixed seed and the real ids."""
    as_user = {"Authorization": f"Bearer {cast.user_token}"}
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "headers": {"Authorization": f"Bearer {world.operator}"},
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            # Replaced by fitting_data_accepted_unless_state_refuses; every other check runs.
            "checks": {"positive_data_acceptance": {"enabled": False}},
            # The org and the member are always the real ones (removing a member keeps it);
            # what can be deleted is the real one most of the time, so that links to what the
            # fuzzer makes itself are followed too.
            "parameters": {
                **{f"path.{name}": cast.ids[name] for name in ("org", "member", "code")},
                **{f"path.{name}": {"dictionary": name, "probability": 0.8} for name in DELETABLE},
            },
            "dictionaries": {name: {"values": [cast.ids[name]]} for name in DELETABLE},
            "phases": {
                "stateful": {"max-steps": STATEFUL_STEPS},
                # Every method a path lacks is refused alike; two of them show it.
                "coverage": {
                    "unexpected-methods": ["OPTIONS", "PUT"],
                },
            },
            "operations": [
                {
                    # Removing a member keeps it readable, with status "removed" (the API's
                    # rule): its DELETE is no deletion.
                    "include-path-regex": "^/api/v1/orgs/\\{org\\}/members/\\{member\\}",
                    "checks": {"use_after_free": {"enabled": False}},
                },
                {
                    "include-path-regex": "^/api/v1/(me|tokens|join|invitations)",
                    "headers": as_user,
                },
                {
                    "include-path": "/api/v1/tokens/{token}",
                    "parameters": {"path.token": cast.spare_token_id},
                },
                {
                    "include-path": "/api/v1/invitations/{token}/accept",
                    "parameters": {"path.token": cast.invitation_token},
                },
                {
                    "include-path": "/api/v1/password-resets/{token}",
                    "parameters": {"path.token": cast.reset_token},
                },
            ],
        }
    )


@dataclass
class Findings:
    """What the run found: failures by operation and check, statuses seen, engine errors."""

    failures: dict[tuple[str, str], str]
    statuses: dict[str, set[int]]
    errors: list[str]


def _run(schema: Any) -> Findings:
    """Run the engine over the schema; gather each failure once, with its request."""
    found = Findings(failures={}, statuses={}, errors=[])
    for event in from_schema(schema).execute():
        if isinstance(event, events.FatalError):
            raise event.exception
        if isinstance(event, events.NonFatalError):
            found.errors.append(f"{event.label}: {event.info.title}: {event.info.message}")
        if not isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            continue
        recorder = event.recorder
        for case_id, interaction in recorder.interactions.items():
            label = recorder.cases[case_id].value.operation.label
            if interaction.response is not None:
                found.statuses.setdefault(label, set()).add(interaction.response.status_code)
        for case_id, checks in recorder.checks.items():
            for check in checks:
                if check.failure_info is None:
                    continue
                failure = check.failure_info.failure
                label = failure.operation or recorder.cases[case_id].value.operation.label
                found.failures.setdefault(
                    (label, f"{check.name}: {failure.title}"),
                    f"{failure.message}\n    {check.failure_info.code_sample}",
                )
    return found


@pytest.fixture
def asgi_lifespans() -> Iterator[None]:
    """End the application lifespans schemathesis starts (it keeps them for the process)."""
    yield
    asgi.shutdown_lifespans()


@pytest.mark.usefixtures("asgi_lifespans")
def test_the_api_keeps_to_its_openapi_document(world: World, app: FastAPI) -> None:
    cast = _cast(world, app)
    schema = schemathesis.openapi.from_asgi(
        "/api/v1/openapi.json", app, config=_config(world, cast)
    )
    operations = [result.ok().label for result in schema.get_all_operations()]

    found = _run(schema)

    report = "\n".join(
        [
            f"{label}: {title}\n    {detail}"
            for (label, title), detail in sorted(found.failures.items())
        ]
        + [f"error: {error}" for error in found.errors]
    )
    kinds = len(found.failures) + len(found.errors)
    assert kinds == 0, f"{kinds} kinds of failure:\n{report}"
    # Every operation was tried, and answered at least once past "who are you" and "no such
    # thing": the real ids and tokens got the requests into the handlers.
    assert set(operations) <= set(found.statuses), sorted(set(operations) - set(found.statuses))
    shallow = sorted(label for label in operations if found.statuses[label] <= {401, 403, 404})
    assert not shallow, shallow


def test_a_405_names_every_method_of_its_path(client: TestClient) -> None:
    answers = {
        path: client.request("OPTIONS", path)
        for path in ("/api/v1/tokens", "/api/v1/orgs/x/reset", "/api/v1/orgs/x/members/y")
    }
    allowed = {path: answer.headers.get("allow") for path, answer in answers.items()}
    assert {answer.status_code for answer in answers.values()} == {405}
    assert allowed == {
        "/api/v1/tokens": "GET, POST",
        "/api/v1/orgs/x/reset": "GET, POST",
        "/api/v1/orgs/x/members/y": "DELETE, GET, PATCH",
    }


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


# What the fuzzer found, kept as plain tests.


def test_a_refusal_replayed_from_its_key_answers_again_without_being_stored_twice(
    world: World,
) -> None:
    code = world.org["invite_code"]
    refused = [
        world.api.call("POST", f"/join/{code}", token=world.students[0], key="again")
        for _ in range(3)
    ]
    for answer in refused:
        problem(answer, 409, "already_member")
    assert [answer.headers.get("Idempotent-Replayed") for answer in refused] == [
        None,
        "true",
        "true",
    ]


def test_a_batch_event_without_its_fields_is_refused_alone(world: World) -> None:
    member = world.student_ids[0]
    allotted = world.api.call(
        "POST",
        f"/orgs/{world.org_id}/allocations",
        token=world.operator,
        json={"member_ids": [member], "amount": "5"},
    )
    assert allotted.status_code == 201, allotted.text
    answer = world.api.call(
        "POST",
        f"/orgs/{world.org_id}/usage",
        token=world.usage_key,
        json={
            "events": [
                {"member_id": member},
                {"key": "no-amount", "member_id": member},
                {"key": "charged", "member_id": member, "amount": "0"},
                {"key": "fine", "member_id": member, "amount": "1"},
            ]
        },
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [(result["status"], result["code"]) for result in results[:3]] == [
        (422, "validation_error"),
        (422, "validation_error"),
        (422, "invalid_amount"),
    ]
    assert [result["key"] for result in results] == [None, "no-amount", "charged", "fine"]
    assert (results[3]["status"], results[3]["code"]) == (201, None), results[3]
