"""The pages under their Content Security Policy, in Chromium: nothing they need is refused.

The policy lets only our own files script and style a page (no inline <script>, no style=""
attribute, no on...= handler), so injected markup cannot run. Each browser session here reports
every `securitypolicyviolation` event and every console error to the test; the main pages are
opened, and the little scripts they have (copy, tick all, confirmations) are used, with no
report. A control shows that the watch works: an inline style injected on purpose is refused
and reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import ConsoleMessage, Dialog, Page, expect

from tests.support.server import Server
from tests.web.conftest import People
from tests.web.steps import join_by_link, member_row, open_org, sign_in_operator, sign_up

CLASS = "Policy class"
OWNER = ("Pia Owner", "pia@school.test")
STUDENTS = (("Sid Student", "sid@school.test"), ("Sue Student", "sue@school.test"))

# Runs in every document before its own scripts (Playwright adds it outside the page's policy).
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.violations = (window.violations || 0) + 1;
  window.reportViolation(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`
    + ` in ${event.documentURI}`);
});
"""


def watched(page: Page, problems: list[str]) -> Page:
    """Have `page` report policy violations, console errors and uncaught errors to `problems`."""

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url") or page.url
            problems.append(f"console error on {where}: {message.text}")

    page.expose_function("reportViolation", lambda text: problems.append(f"violation: {text}"))
    page.add_init_script(REPORT_VIOLATIONS)
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error on {page.url}: {error}"))
    return page


def visit(page: Page, path: str, heading: str | re.Pattern[str]) -> None:
    """Open a page, wait for its heading and for its scripts to have run."""
    response = page.goto(path)
    assert response is not None
    assert response.status == 200, path
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy, policy
    assert "unsafe-inline" not in policy, policy
    expect(page.get_by_role("heading", name=heading, exact=True).first).to_be_visible()
    page.wait_for_load_state("load")


def answering(asked: list[str], *, accept: bool) -> Callable[[Dialog], None]:
    def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    return answer


def test_the_main_pages_run_under_the_policy_without_a_violation(
    people: People, site: Server
) -> None:
    problems: list[str] = []
    visitor = watched(people.new(), problems)
    visit(visitor, "/sign-in", "Sign in")
    visit(visitor, "/sign-up", "Create your account")

    owner = watched(people.new(), problems)
    sign_up(owner, *OWNER)
    operator = watched(people.new(), problems)
    sign_in_operator(operator)
    org = open_org(operator, CLASS, OWNER[1])
    visit(operator, "/operator", "Operator console")

    visit(owner, f"/orgs/{org}", CLASS)
    expect(owner.locator("figure.chart svg")).to_be_visible()  # the SVG chart, styled by CSS
    link = owner.locator("#invite-link").input_value()
    for name, email in STUDENTS:
        join_by_link(watched(people.new(), problems), link, name, email)
    student = people.contexts[-1].pages[0]
    visit(student, "/me", "My credits")

    # The copy button.
    visit(owner, f"/orgs/{org}", CLASS)
    owner.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    copy = owner.locator('button[data-copy="#invite-link"]')
    copy.click()
    expect(copy).to_have_text("Copied")
    assert owner.evaluate("navigator.clipboard.readText()") == link

    # Tick all ticks every member's box, and untick all clears them.
    every = owner.get_by_label("Tick every member")
    every.check()
    for name, _ in STUDENTS:
        expect(owner.get_by_label(f"Tick {name}")).to_be_checked()
    every.uncheck()
    for name, _ in STUDENTS:
        expect(owner.get_by_label(f"Tick {name}")).not_to_be_checked()

    # A confirmation: dismissed, nothing is sent; accepted, the member is removed.
    sid, sid_email = STUDENTS[0]
    asked: list[str] = []
    owner.once("dialog", answering(asked, accept=False))
    owner.get_by_role("button", name=f"Remove {sid}").click()
    assert asked == [f"Remove {sid}? Their history stays."]
    expect(member_row(owner, sid_email).get_by_role("button", name=f"Remove {sid}")).to_be_visible()
    owner.once("dialog", answering(asked, accept=True))
    with owner.expect_response(lambda r: r.request.method == "POST"):
        owner.get_by_role("button", name=f"Remove {sid}").click()
    assert asked[1:] == [f"Remove {sid}? Their history stays."]

    visit(owner, f"/orgs/{org}/ledger", f"Ledger of {CLASS}")
    assert problems == [], "\n".join(problems)

    # The control: what the policy forbids is refused, and the watch above would have said so.
    owner.evaluate(
        """() => {
        const sneaky = document.createElement("div");
        sneaky.setAttribute("style", "color: red");
        document.body.append(sneaky);
        const script = document.createElement("script");
        script.textContent = "window.ranInline = true";
        document.body.append(script);
    }"""
    )
    owner.wait_for_function("() => window.violations >= 2")  # they are dispatched later
    assert owner.evaluate("window.ranInline === undefined")
    assert any("style-src" in problem for problem in problems), problems
    assert any("script-src" in problem for problem in problems), problems
