"""`creditpool org create --parent ORG` opens a child org; `org list` names each org's parent."""

from __future__ import annotations

from creditpool.services import orgs, users
from creditpool.storage.unit_of_work import UnitOfWork
from tests.interfaces.conftest import run, unique_email


def test_an_org_is_opened_under_a_parent_and_listed_with_it(cli_uow: UnitOfWork) -> None:
    owner = users.create_user(cli_uow, email=unique_email("dana"), name="Dana")
    district = run("org", "create", "District", "--owner", owner.email).out.split()[0]

    school = run("org", "create", "School", "--owner", owner.email, "--parent", district)
    assert school.code == 0, school
    school_id = school.out.split()[0]
    assert school.out == f"{school_id}  'School', owned by {owner.email}, a child of {district}\n"
    assert orgs.get_org(cli_uow, school_id).parent_id == district

    listed = run("org", "list").out.splitlines()
    assert f"{district}  'District': 0 available, 0 allocated, 0 used, 0 metered" in listed
    assert (
        f"{school_id}  'School': 0 available, 0 allocated, 0 used, 0 metered, child of {district}"
        in listed
    )

    klass = run("org", "create", "Class", "--owner", owner.email, "--parent", school_id)
    too_deep = run(
        "org", "create", "Group", "--owner", owner.email, "--parent", klass.out.split()[0]
    )
    assert too_deep.code == 1
    assert "validation_error" in too_deep.err
    unknown = run("org", "create", "X", "--owner", owner.email, "--parent", "org_nothing")
    assert (unknown.code, "not_found" in unknown.err) == (1, True)
