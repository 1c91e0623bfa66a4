"""Who may call what: the roles table (domain/roles.py) walked over every endpoint of the API.

The expectations below are written from the design, not from the code: each endpoint names the
row of the Roles table it belongs to, and the set of callers that row allows. Every caller then
calls every endpoint with a request that an allowed caller would see succeed (real targets, valid
bodies), so the class of the answer says only whether authorization let it through:

- an allowed caller gets the endpoint's 2xx;
- no token gets 401 `unauthenticated`;
- a caller with no standing in the org (another org's owner, another org's API key) gets 404
  `not_found` on anything under /orgs/{org}: ids of other orgs reveal nothing;
- any other known caller whose role falls short gets 403 `forbidden`.

Calls that change state get fresh targets (a new member to remove, a new hold to void…) and put
back what later calls need (resume the org, restore a seat, students rejoin after a reset). A
target is made once and handed to each caller in turn until a call succeeds: a refused call must
change nothing, so the next allowed caller succeeding on the same target also shows that the
refusals before it left it alone.

Rights flow down a family of orgs and never up: the same walk runs in a class two levels under
a district, where the owners and managers of its school and district answer as its managers do
(never as its owner) and their members and a sibling class's manager as strangers; and in a
district, where the people of its school and of that school's class, owners included, answer
as strangers.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
from fastapi import FastAPI

from creditpool.services import mail
from creditpool.storage.unit_of_work import UnitOfWork
from tests.api.support import OPERATOR_KEY, PASSWORD, Api, World, problem, signed_in_browser

# The callers.
OPERATOR = "operator"
OWNER = "owner"
MANAGER = "manager"
MEMBER = "member"  # the first student
STRANGER = "stranger"  # a signed-in user who owns another org
KEY = "usage key"  # the org's API key, scope usage
FOREIGN_KEY = "foreign key"  # another org's API key, scope usage
NOBODY = "no token"
CALLERS = (OPERATOR, OWNER, MANAGER, MEMBER, STRANGER, KEY, FOREIGN_KEY, NOBODY)

# The roles table, one set per row, written out here rather than read from the code.
OPERATE = frozenset({OPERATOR})  # create org, list all orgs, record purchase
GOVERN = frozenset({OPERATOR, OWNER})  # settings, pause/resume, API keys, reset, change roles
MANAGE = frozenset({OPERATOR, OWNER, MANAGER})  # invite, rotate, groups, allot, revoke, seats…
READ = frozenset({OPERATOR, OWNER, MANAGER, KEY})  # see the org, balance, members, ledger
READ_OWN = READ | {MEMBER}  # see own wallet and usage
CHARGE = frozenset({OPERATOR, KEY})  # charge usage, holds, check access
# Outside the org's rows: calls about a person, and calls needing no auth.
PEOPLE = frozenset({OWNER, MANAGER, MEMBER, STRANGER})  # signed-in users, not keys
SIGNED_IN = frozenset(CALLERS) - {NOBODY}
ANYONE = frozenset(CALLERS)

_numbers = itertools.count(1)


def _unique(prefix: str) -> str:
    return f"{prefix}-{next(_numbers)}"


@dataclass
class Stage:
    """The world, its callers' tokens, and fresh targets made on demand by the operator."""

    world: World
    app: FastAPI
    tokens: dict[str, str | None]
    emails: dict[str, str]  # of the callers who are people
    join_org: str  # an org none of the callers belongs to, to join and leave
    spares: dict[str, Any] = field(default_factory=dict)  # targets no call has used up yet
    room_below: bool = True  # the org may have children (it is not three levels down)

    @property
    def api(self) -> Api:
        return self.world.api

    @property
    def org(self) -> str:
        return self.world.org_id

    def ok(self, method: str, path: str, json: Any = None, token: str | None = None) -> Any:
        """Call as the operator (or `token`) and insist that it works; return the body."""
        response = self.api.call(method, path, token=token or self.world.operator, json=json)
        assert response.is_success, f"{method} {path}: {response.text}"
        return response.json() if response.content else None

    def spare(self, kind: str, make: Callable[[], Any]) -> Any:
        """The target of this kind that no successful call has used up, made if need be."""
        if kind not in self.spares:
            self.spares[kind] = make()
        return self.spares[kind]

    def allot(self, member_id: str) -> None:
        """See that the member has a credit no successful call has spent yet."""
        self.spare(
            f"credit of {member_id}",
            lambda: self.ok(
                "POST",
                f"/orgs/{self.org}/allocations",
                {"member_ids": [member_id], "amount": "1"},
            ),
        )

    def fresh_hold(self) -> str:
        student = self.world.student_ids[0]
        self.allot(student)
        hold = self.ok("POST", f"/orgs/{self.org}/members/{student}/holds", {"amount": "1"})
        self.spares.pop(f"credit of {student}")
        return str(hold["id"])

    def fresh_member(self) -> str:
        _, token = self.api.sign_up("Leaver")
        code = self.ok("GET", f"/orgs/{self.org}/invite-link")["code"]
        return str(self.ok("POST", f"/join/{code}", token=token)["id"])

    def fresh_removed_member(self) -> str:
        member = self.fresh_member()
        self.ok("DELETE", f"/orgs/{self.org}/members/{member}")
        return member

    def fresh_manager(self) -> str:
        member = self.fresh_member()
        self.ok("PATCH", f"/orgs/{self.org}/members/{member}", {"role": "manager"})
        return member

    def fresh_removed_manager(self) -> str:
        manager = self.fresh_manager()
        self.ok("DELETE", f"/orgs/{self.org}/members/{manager}")
        return manager

    def fresh_group(self) -> str:
        return str(self.ok("POST", f"/orgs/{self.org}/groups", {"name": _unique("Group")})["id"])

    def fresh_invitation(self, org: str, email: str) -> tuple[str, str]:
        """Invite `email` to `org`; return the invitation's id and the token mailed to it."""
        made = self.ok("POST", f"/orgs/{org}/invitations", {"emails": [email]})
        uow = UnitOfWork(self.app.state.session_factory, self.app.state.clock)
        _, body, _ = mail.outbox_for(uow, email)[-1]
        token = re.search(r"/invitations/(\S+)", body)
        assert token is not None, body
        return str(made["items"][0]["id"]), token.group(1)


Request = tuple[str, str, Any]  # method, path (under /api/v1), JSON body


@dataclass(frozen=True)
class Case:
    """One endpoint: who may call it, what success answers, and how to call it."""

    label: str
    allowed: frozenset[str]
    success: int
    request: Callable[[Stage, str], Request]  # the stage and the caller
    in_org: bool = True  # under /orgs/{org}: callers of another org get 404
    needs_room: bool = False  # needs a child of the org (not walked three levels down)
    after: Callable[[Stage, httpx.Response], None] | None = None  # put back what others need


def _resume(stage: Stage, _: httpx.Response) -> None:
    stage.ok("POST", f"/orgs/{stage.org}/resume")


def _resume_if_paused(stage: Stage, response: httpx.Response) -> None:
    if response.is_success:
        _resume(stage, response)


def _paused_then_resume(stage: Stage, _: str) -> Request:
    stage.ok("POST", f"/orgs/{stage.org}/pause")
    return "POST", f"/orgs/{stage.org}/resume", None


def _licensed_again(stage: Stage, response: httpx.Response) -> None:
    if not response.is_success:
        return
    student = stage.world.student_ids[1]
    stage.ok("PATCH", f"/orgs/{stage.org}/members/{student}", {"seat": "licensed"})


def _member_again(stage: Stage, response: httpx.Response) -> None:
    if not response.is_success:
        return
    student = stage.world.student_ids[1]
    stage.ok("PATCH", f"/orgs/{stage.org}/members/{student}", {"role": "member"})


def _revocable(stage: Stage, _: str) -> Request:
    student = stage.world.student_ids[1]
    stage.allot(student)
    return "POST", f"/orgs/{stage.org}/revocations", {"member_ids": [student], "amount": "1"}


def _usage(stage: Stage, _: str) -> Request:
    student = stage.world.student_ids[0]
    stage.allot(student)
    body = {"amount": "1", "metrics": {"renders": 1}, "reference": "job"}
    return "POST", f"/orgs/{stage.org}/members/{student}/usage", body


def _hold(stage: Stage, _: str) -> Request:
    student = stage.world.student_ids[0]
    stage.allot(student)
    return "POST", f"/orgs/{stage.org}/members/{student}/holds", {"amount": "1"}


def _new_child(stage: Stage, _: str) -> Request:
    body = {"name": _unique("Child"), "owner_email": stage.emails[OWNER]}
    return "POST", f"/orgs/{stage.org}/children", body


def _child(stage: Stage) -> str:
    """A child of the org no successful call has used up yet, opened by the operator."""

    def make() -> str:
        method, path, body = _new_child(stage, OPERATOR)
        return str(stage.ok(method, path, body)["id"])

    return str(stage.spare("child", make))


def _allot_to_child(stage: Stage, _: str) -> Request:
    return "POST", f"/orgs/{stage.org}/children/{_child(stage)}/allocations", {"amount": "1"}


def _take_back_from_child(stage: Stage, _: str) -> Request:
    child = _child(stage)
    stage.spare(
        f"credit of {child}",
        lambda: stage.ok(
            "POST", f"/orgs/{stage.org}/children/{child}/allocations", {"amount": "1"}
        ),
    )
    return "POST", f"/orgs/{stage.org}/children/{child}/revocations", {"amount": "1"}


def _usage_batch(stage: Stage, _: str) -> Request:
    student = stage.world.student_ids[0]
    stage.allot(student)
    event = {"key": _unique("event"), "member_id": student, "amount": "1"}
    return "POST", f"/orgs/{stage.org}/usage", {"events": [event]}


def _delete_token(stage: Stage, caller: str) -> Request:
    # A person revokes a token of its own; a key or nobody tries one of the owner's.
    email = stage.emails.get(caller, stage.emails[OWNER])
    issued = stage.ok("POST", "/tokens", {"email": email, "password": PASSWORD}, token=None)
    return "DELETE", f"/tokens/{issued['id']}", None


def _join(stage: Stage, _: str) -> Request:
    code = stage.ok("GET", f"/orgs/{stage.join_org}/invite-link")["code"]
    return "POST", f"/join/{code}", None


def _accept(stage: Stage, caller: str) -> Request:
    # A person accepts an invitation sent to its own address; a key or nobody holds a real
    # invitation too, so that only who is calling can explain a refusal.
    email = stage.emails.get(caller, f"{_unique('invitee')}@example.test")
    _, token = stage.fresh_invitation(stage.join_org, email)
    return "POST", f"/invitations/{token}/accept", None


def _leave_join_org(stage: Stage, response: httpx.Response) -> None:
    if response.is_success:
        stage.ok("DELETE", f"/orgs/{stage.join_org}/members/{response.json()['id']}")


def _students_rejoin(stage: Stage, response: httpx.Response) -> None:
    if response.is_success:
        code = stage.ok("GET", f"/orgs/{stage.org}/invite-link")["code"]
        for token in stage.world.students:
            stage.ok("POST", f"/join/{code}", token=token)


def _cases() -> list[Case]:
    def at(method: str, path: str, body: Any = None) -> Callable[[Stage, str], Request]:
        """A request whose path names the org ({org}) and the two students ({s0}, {s1})."""

        def build(stage: Stage, _: str) -> Request:
            s0, s1 = stage.world.student_ids
            return method, path.format(org=stage.org, s0=s0, s1=s1), body

        return build

    def on(method: str, path: str, fresh: str, body: Any = None) -> Callable[[Stage, str], Request]:
        """A request about a fresh target ({id}), made anew once a call succeeds on it."""

        def build(stage: Stage, _: str) -> Request:
            org = stage.org
            make = {
                "hold": stage.fresh_hold,
                "member": stage.fresh_member,
                "removed member": stage.fresh_removed_member,
                "manager": stage.fresh_manager,
                "removed manager": stage.fresh_removed_manager,
                "group": stage.fresh_group,
                "api-key": lambda: stage.ok(
                    "POST", f"/orgs/{org}/api-keys", {"name": "spare", "scopes": ["usage"]}
                )["id"],
                "invitation": lambda: stage.fresh_invitation(
                    org, f"{_unique('invitee')}@example.test"
                )[0],
            }[fresh]
            target = stage.spare(fresh, make)
            return method, path.format(org=org, id=target), body

        return build

    def new_user(stage: Stage, _: str) -> Request:
        email = f"{_unique('newcomer')}@example.test"
        return "POST", "/users", {"email": email, "password": PASSWORD, "name": "Newcomer"}

    def new_org(stage: Stage, _: str) -> Request:
        return "POST", "/orgs", {"name": _unique("Org"), "owner_email": stage.emails[OWNER]}

    def new_token(stage: Stage, _: str) -> Request:
        return "POST", "/tokens", {"email": stage.emails[MEMBER], "password": PASSWORD}

    seat = {"seat": "unlicensed"}
    return [
        # No auth needed, or about the caller as a person.
        Case("GET /openapi.json", ANYONE, 200, at("GET", "/openapi.json"), in_org=False),
        Case("POST /users", ANYONE, 201, new_user, in_org=False),
        Case("POST /tokens", ANYONE, 201, new_token, in_org=False),
        Case("DELETE /tokens/{id}", PEOPLE, 204, _delete_token, in_org=False),
        Case("GET /tokens", PEOPLE, 200, at("GET", "/tokens"), in_org=False),
        Case("GET /me", PEOPLE, 200, at("GET", "/me"), in_org=False),
        Case("POST /join/{code}", PEOPLE, 201, _join, in_org=False, after=_leave_join_org),
        Case(
            "POST /invitations/{token}/accept",
            PEOPLE,
            201,
            _accept,
            in_org=False,
            after=_leave_join_org,
        ),
        # Organisations.
        Case("POST /orgs", OPERATE, 201, new_org, in_org=False),
        Case("GET /orgs", SIGNED_IN, 200, at("GET", "/orgs"), in_org=False),
        Case("GET /orgs/{org}", READ, 200, at("GET", "/orgs/{org}")),
        Case(
            "PATCH /orgs/{org}/settings",
            GOVERN,
            200,
            at("PATCH", "/orgs/{org}/settings", {"returnable": True}),
        ),
        Case(
            "POST /orgs/{org}/purchases",
            OPERATE,
            201,
            at("POST", "/orgs/{org}/purchases", {"amount": "1", "reference": "invoice"}),
        ),
        Case(
            "POST /orgs/{org}/pause",
            GOVERN,
            200,
            at("POST", "/orgs/{org}/pause"),
            after=_resume_if_paused,
        ),
        Case("POST /orgs/{org}/resume", GOVERN, 200, _paused_then_resume, after=_resume),
        Case("GET /orgs/{org}/balance", READ, 200, at("GET", "/orgs/{org}/balance")),
        Case("GET /orgs/{org}/transfers", READ, 200, at("GET", "/orgs/{org}/transfers")),
        Case("GET /orgs/{org}/lots", MANAGE, 200, at("GET", "/orgs/{org}/lots")),
        Case(
            "GET /orgs/{org}/transfers?member=<own>",
            READ_OWN,
            200,
            at("GET", "/orgs/{org}/transfers?member={s0}"),
        ),
        Case(
            "GET /orgs/{org}/transfers?member=<another student>",
            READ,
            200,
            at("GET", "/orgs/{org}/transfers?member={s1}"),
        ),
        Case(
            "POST /orgs/{org}/api-keys",
            GOVERN,
            201,
            at("POST", "/orgs/{org}/api-keys", {"name": "render farm", "scopes": ["usage"]}),
        ),
        Case("GET /orgs/{org}/api-keys", GOVERN, 200, at("GET", "/orgs/{org}/api-keys")),
        Case(
            "DELETE /orgs/{org}/api-keys/{id}",
            GOVERN,
            204,
            on("DELETE", "/orgs/{org}/api-keys/{id}", "api-key"),
        ),
        # Invitations and members.
        Case("GET /orgs/{org}/invite-link", MANAGE, 200, at("GET", "/orgs/{org}/invite-link")),
        Case(
            "POST /orgs/{org}/invite-link/rotate",
            MANAGE,
            200,
            at("POST", "/orgs/{org}/invite-link/rotate"),
        ),
        Case(
            "POST /orgs/{org}/invitations",
            MANAGE,
            201,
            lambda stage, _: (
                "POST",
                f"/orgs/{stage.org}/invitations",
                {"emails": [f"{_unique('invitee')}@example.test"]},
            ),
        ),
        # Only the owner (or an operator) makes managers, by any road.
        Case(
            "POST /orgs/{org}/invitations as manager",
            GOVERN,
            201,
            lambda stage, _: (
                "POST",
                f"/orgs/{stage.org}/invitations",
                {"emails": [f"{_unique('invitee')}@example.test"], "role": "manager"},
            ),
        ),
        Case("GET /orgs/{org}/invitations", MANAGE, 200, at("GET", "/orgs/{org}/invitations")),
        Case(
            "DELETE /orgs/{org}/invitations/{id}",
            MANAGE,
            204,
            on("DELETE", "/orgs/{org}/invitations/{id}", "invitation"),
        ),
        Case("GET /orgs/{org}/members", READ, 200, at("GET", "/orgs/{org}/members")),
        Case(
            "GET /orgs/{org}/members/<own>",
            READ_OWN,
            200,
            at("GET", "/orgs/{org}/members/{s0}"),
        ),
        Case(
            "GET /orgs/{org}/members/<another student>",
            READ,
            200,
            at("GET", "/orgs/{org}/members/{s1}"),
        ),
        Case(
            "PATCH /orgs/{org}/members/{member} seat",
            MANAGE,
            200,
            at("PATCH", "/orgs/{org}/members/{s1}", seat),
            after=_licensed_again,
        ),
        Case(
            "PATCH /orgs/{org}/members/{member} role",
            GOVERN,
            200,
            at("PATCH", "/orgs/{org}/members/{s1}", {"role": "manager"}),
            after=_member_again,
        ),
        Case(
            "DELETE /orgs/{org}/members/{member}",
            MANAGE,
            200,
            on("DELETE", "/orgs/{org}/members/{id}", "member"),
        ),
        Case(
            "POST /orgs/{org}/members/{member}/restore",
            MANAGE,
            200,
            on("POST", "/orgs/{org}/members/{id}/restore", "removed member"),
        ),
        Case(
            "DELETE /orgs/{org}/members/{manager}",
            GOVERN,
            200,
            on("DELETE", "/orgs/{org}/members/{id}", "manager"),
        ),
        Case(
            "POST /orgs/{org}/members/{manager}/restore",
            GOVERN,
            200,
            on("POST", "/orgs/{org}/members/{id}/restore", "removed manager"),
        ),
        Case(
            "POST /orgs/{org}/groups",
            MANAGE,
            201,
            lambda stage, _: ("POST", f"/orgs/{stage.org}/groups", {"name": _unique("Group")}),
        ),
        Case("GET /orgs/{org}/groups", READ, 200, at("GET", "/orgs/{org}/groups")),
        Case(
            "PATCH /orgs/{org}/groups/{group}",
            MANAGE,
            200,
            lambda stage, caller: on(
                "PATCH", "/orgs/{org}/groups/{id}", "group", {"name": _unique("Renamed")}
            )(stage, caller),
        ),
        Case(
            "PUT /orgs/{org}/groups/{group}/members",
            MANAGE,
            200,
            lambda stage, caller: on(
                "PUT",
                "/orgs/{org}/groups/{id}/members",
                "group",
                {"member_ids": stage.world.student_ids},
            )(stage, caller),
        ),
        Case(
            "DELETE /orgs/{org}/groups/{group}",
            MANAGE,
            204,
            on("DELETE", "/orgs/{org}/groups/{id}", "group"),
        ),
        # Credits.
        Case(
            "POST /orgs/{org}/allocations",
            MANAGE,
            201,
            lambda stage, _: (
                "POST",
                f"/orgs/{stage.org}/allocations",
                {"member_ids": [stage.world.student_ids[0]], "amount": "1"},
            ),
        ),
        Case("POST /orgs/{org}/revocations", MANAGE, 201, _revocable),
        Case("POST /orgs/{org}/members/{member}/usage", CHARGE, 201, _usage),
        Case("POST /orgs/{org}/members/{member}/holds", CHARGE, 201, _hold),
        Case(
            "GET /orgs/{org}/holds/{hold}", CHARGE, 200, on("GET", "/orgs/{org}/holds/{id}", "hold")
        ),
        Case(
            "POST /orgs/{org}/holds/{hold}/capture",
            CHARGE,
            201,
            on("POST", "/orgs/{org}/holds/{id}/capture", "hold", {"amount": "0.5"}),
        ),
        Case(
            "POST /orgs/{org}/holds/{hold}/void",
            CHARGE,
            200,
            on("POST", "/orgs/{org}/holds/{id}/void", "hold"),
        ),
        Case("POST /orgs/{org}/usage", CHARGE, 200, _usage_batch),
        Case(
            "GET /orgs/{org}/members/{member}/access",
            CHARGE,
            200,
            at("GET", "/orgs/{org}/members/{s0}/access"),
        ),
        # Children: opening one is the owner's; allotting to one and taking back, managing.
        Case("POST /orgs/{org}/children", GOVERN, 201, _new_child, needs_room=True),
        Case("GET /orgs/{org}/children", MANAGE, 200, at("GET", "/orgs/{org}/children")),
        Case(
            "POST /orgs/{org}/children/{child}/allocations",
            MANAGE,
            201,
            _allot_to_child,
            needs_room=True,
        ),
        Case(
            "POST /orgs/{org}/children/{child}/revocations",
            MANAGE,
            201,
            _take_back_from_child,
            needs_room=True,
        ),
        # Last: a reset removes the students (they rejoin after each one that succeeds).
        Case("GET /orgs/{org}/reset", GOVERN, 200, at("GET", "/orgs/{org}/reset")),
        Case(
            "POST /orgs/{org}/reset",
            GOVERN,
            200,
            at("POST", "/orgs/{org}/reset"),
            after=_students_rejoin,
        ),
    ]


CASES = _cases()


def _expected(
    case: Case, caller: str, acts_as: Mapping[str, str] | None = None
) -> tuple[int, str | None]:
    """The status (and problem code) the Roles table gives this caller on this endpoint;
    `acts_as` names, for callers of a family around the org, the caller each acts as in it
    (outside the org's rows, each is a signed-in person like the stranger)."""
    if acts_as is not None and caller in acts_as:
        caller = acts_as[caller] if case.in_org else STRANGER
    if caller in case.allowed:
        return case.success, None
    if caller == NOBODY:
        return 401, "unauthenticated"
    if case.in_org and caller in (STRANGER, FOREIGN_KEY):
        return 404, "not_found"
    return 403, "forbidden"


def _stage(world: World, app: FastAPI) -> Stage:
    api = world.api
    foreign_key = api.call(
        "POST",
        f"/orgs/{world.other_org['id']}/api-keys",
        token=world.operator,
        json={"name": "their farm", "scopes": ["usage"]},
    ).json()["key"]
    tokens: dict[str, str | None] = {
        OPERATOR: world.operator,
        OWNER: world.owner,
        MANAGER: world.manager,
        MEMBER: world.students[0],
        STRANGER: world.stranger,
        KEY: world.usage_key,
        FOREIGN_KEY: foreign_key,
        NOBODY: None,
    }
    emails = {}
    for caller in PEOPLE:
        me = api.call("GET", "/me", token=tokens[caller])
        assert me.status_code == 200, me.text
        emails[caller] = me.json()["user"]["email"]
    host, _ = api.sign_up("Host")
    join_org = api.call(
        "POST",
        "/orgs",
        token=world.operator,
        json={"name": "Open class", "owner_email": host["email"]},
    ).json()["id"]
    return Stage(world=world, app=app, tokens=tokens, emails=emails, join_org=join_org)


def _walk(stage: Stage, callers: Sequence[str], acts_as: Mapping[str, str] | None = None) -> None:
    """Call every endpoint as every caller; fail naming each answer the table does not give."""
    world = stage.world
    mismatches = []
    for case in CASES:
        if case.needs_room and not stage.room_below:
            continue
        for caller in callers:
            method, path, body = case.request(stage, caller)
            response = world.api.call(method, path, token=stage.tokens[caller], json=body)
            status, code = _expected(case, caller, acts_as)
            try:
                if code is None:
                    assert response.status_code == status, response.text
                else:
                    problem(response, status, code)
            except AssertionError:
                mismatches.append(
                    f"{case.label} as {caller}: expected {status} {code or ''}, "
                    f"got {response.status_code} {response.text[:160]}"
                )
            if case.after is not None:
                case.after(stage, response)
            if response.is_success:
                stage.spares.clear()
    assert not mismatches, "\n".join(mismatches)
    _whole_again(world)


def test_every_endpoint_answers_each_caller_as_the_roles_table_says(
    world: World, app: FastAPI
) -> None:
    _walk(_stage(world, app), CALLERS)


def _whole_again(world: World) -> None:
    """The walk put back what it borrowed: the cast is whole and the org is running."""
    members = world.api.call("GET", f"/orgs/{world.org_id}/members", token=world.owner).json()
    roles = sorted(member["role"] for member in members["items"] if member["name"] != "Leaver")
    assert roles == ["manager", "member", "member", "owner"]
    org = world.api.call("GET", f"/orgs/{world.org_id}", token=world.operator).json()
    assert org["paused"] is False


# A family around the org of the walk: a district, its school, the school's classes.
DISTRICT_OWNER, DISTRICT_MANAGER, DISTRICT_MEMBER = (
    f"the district's {role}" for role in ("owner", "manager", "member")
)
SCHOOL_OWNER, SCHOOL_MANAGER, SCHOOL_MEMBER = (
    f"the school's {role}" for role in ("owner", "manager", "member")
)
CLASS_OWNER, CLASS_MANAGER, CLASS_MEMBER = (
    f"the class's {role}" for role in ("owner", "manager", "member")
)
SIBLING_MANAGER = "a sibling class's manager"


@dataclass(frozen=True)
class Kin:
    """An org of the family, made over the API, and its people's tokens and e-mails."""

    org_id: str
    tokens: dict[str, str]  # by role: "owner", "manager", "member"
    emails: dict[str, str]


def _kin(api: Api, name: str, parent: str | None) -> Kin:
    """An org (under `parent`, or at the top) with an owner, a manager and a member."""
    people = {role: api.sign_up(f"{name} {role}") for role in ("owner", "manager", "member")}
    owner_user = people["owner"][0]
    if parent is None:
        made = api.call(
            "POST",
            "/orgs",
            token=OPERATOR_KEY,
            json={"name": name, "owner_email": owner_user["email"]},
        )
        assert made.status_code == 201, made.text
        org_id = str(made.json()["id"])
    else:
        org_id = _open_child(api, parent, name, owner_user["email"])
    owner = people["owner"][1]
    code = api.call("GET", f"/orgs/{org_id}/invite-link", token=owner).json()["code"]
    for role in ("manager", "member"):
        joined = api.call("POST", f"/join/{code}", token=people[role][1])
        assert joined.status_code == 201, joined.text
        if role == "manager":
            changed = api.call(
                "PATCH",
                f"/orgs/{org_id}/members/{joined.json()['id']}",
                token=owner,
                json={"role": "manager"},
            )
            assert changed.status_code == 200, changed.text
    return Kin(
        org_id,
        {role: token for role, (_, token) in people.items()},
        {role: str(user["email"]) for role, (user, _) in people.items()},
    )


def _open_child(api: Api, parent: str, name: str, owner_email: str) -> str:
    """A child org of `parent`, opened by the operator."""
    made = api.call(
        "POST",
        f"/orgs/{parent}/children",
        token=OPERATOR_KEY,
        json={"name": name, "owner_email": owner_email},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def _with_kin(stage: Stage, kin: dict[str, tuple[Kin, str]]) -> Stage:
    """The stage with more callers: each named one is the person of that role in that org."""
    for caller, (org, role) in kin.items():
        stage.tokens[caller] = org.tokens[role]
        stage.emails[caller] = org.emails[role]
    return stage


def test_the_owner_and_managers_of_a_classs_ancestors_act_in_it_as_its_managers(
    api: Api, app: FastAPI
) -> None:
    """The walk in a class two levels down: the district's and the school's owner and
    manager are its managers, never its owner; their members and a sibling class's manager
    are strangers to it."""
    district = _kin(api, "District", None)
    school = _kin(api, "School", district.org_id)
    sibling = _kin(api, "Class B", school.org_id)
    world = World.build(api, parent=school.org_id)
    family = {
        DISTRICT_OWNER: (district, "owner"),
        DISTRICT_MANAGER: (district, "manager"),
        DISTRICT_MEMBER: (district, "member"),
        SCHOOL_OWNER: (school, "owner"),
        SCHOOL_MANAGER: (school, "manager"),
        SCHOOL_MEMBER: (school, "member"),
        SIBLING_MANAGER: (sibling, "manager"),
    }
    acts_as = {
        caller: MANAGER if role != "member" else STRANGER for caller, (_, role) in family.items()
    }
    acts_as[SIBLING_MANAGER] = STRANGER
    stage = _with_kin(_stage(world, app), family)
    stage.room_below = False  # three levels down: no children here
    _walk(stage, (*CALLERS, *family), acts_as)


def test_nobody_in_a_child_or_grandchild_gains_any_right_in_a_district(
    world: World, app: FastAPI
) -> None:
    """The walk in a district (the usual org, at the top): the people of its school and of
    that school's class are strangers to it, owners and managers too."""
    api = world.api
    school = _kin(api, "School", world.org_id)
    klass = _kin(api, "Class", school.org_id)
    family = {
        SCHOOL_OWNER: (school, "owner"),
        SCHOOL_MANAGER: (school, "manager"),
        SCHOOL_MEMBER: (school, "member"),
        CLASS_OWNER: (klass, "owner"),
        CLASS_MANAGER: (klass, "manager"),
        CLASS_MEMBER: (klass, "member"),
    }
    acts_as = dict.fromkeys(family, STRANGER)
    _walk(_with_kin(_stage(world, app), family), (*CALLERS, *family), acts_as)


def test_the_pages_let_a_districts_manager_run_a_class_below_but_not_own_it(
    api: Api, app: FastAPI
) -> None:
    district = _kin(api, "District", None)
    school = _kin(api, "School", district.org_id)
    klass = _kin(api, "Class", school.org_id)
    browser = signed_in_browser(app, district.emails["manager"])
    page = browser.get(f"/orgs/{klass.org_id}")
    assert page.status_code == 200, page.text[:300]
    assert "Invite" in page.text
    assert f"/orgs/{klass.org_id}/reset" not in page.text  # the owner's parts are not shown
    assert browser.get(f"/orgs/{klass.org_id}/ledger").status_code == 200
    assert browser.get(f"/orgs/{klass.org_id}/reset").status_code == 403
    # Up, nothing: the class's owner finds no school and no district.
    owner = signed_in_browser(app, klass.emails["owner"])
    assert owner.get(f"/orgs/{klass.org_id}").status_code == 200
    for above in (school.org_id, district.org_id):
        assert owner.get(f"/orgs/{above}").status_code == 404
        assert owner.get(f"/orgs/{above}/ledger").status_code == 404
