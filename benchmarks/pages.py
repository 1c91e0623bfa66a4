"""The class manager of a big org, as its owner sees it: the server's time, the HTML's size,
and how long Chromium (Debian's package, driven by Playwright) takes to load it."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import httpx2 as httpx
from playwright.sync_api import sync_playwright
from tests.web.conftest import chromium_path

from creditpool.demo_school import School

RUNS = 5


@dataclass(frozen=True)
class ClassPage:
    """The page's figures: medians of a few loads."""

    server_ms: float
    html_kib: float
    browser_ms: float


def measure_class_page(base_url: str, school: School) -> ClassPage:
    """Sign in as the school's owner in Chromium, then load its class page a few times."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        page = browser.new_page()
        page.goto(f"{base_url}/sign-in")
        page.fill("#email", school.owner_email)
        page.fill("#password", school.owner_password)
        page.click("button[type=submit]")
        page.wait_for_load_state("load")
        address = f"{base_url}/orgs/{school.org_id}"
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        server, size = [], 0
        with httpx.Client(cookies=cookies, timeout=120) as client:
            for _ in range(RUNS):
                started = time.perf_counter()
                answer = client.get(address)
                server.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise SystemExit(f"the class page answered {answer.status_code}")
                size = len(answer.content)
        loads = []
        for _ in range(RUNS):
            started = time.perf_counter()
            page.goto(address, wait_until="load", timeout=180_000)
            loads.append(time.perf_counter() - started)
        browser.close()
    return ClassPage(
        server_ms=statistics.median(server) * 1000,
        html_kib=size / 1024,
        browser_ms=statistics.median(loads) * 1000,
    )
