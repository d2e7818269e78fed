"""GET /api/docs in a real headless Chromium: the page renders the service's document from local assets only,
lists the leads operations, takes a bearer token from /api/auth/login through Authorize and runs
``GET /api/me`` ("Try it out" → Execute) successfully.

Needs Debian's Chromium (``apt-get install -y chromium chromium-driver``; .ci/services.sh installs it on CI)
driven by Playwright for Python (test extras) with ``executable_path`` — never ``playwright install``,
which downloads a browser build. Without Chromium the test is skipped with that instruction, except on CI
(``CI=true``), where a skip would hide the page's only end-to-end check: there it fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests import support
from tests.conftest import Tenant

CHROMIUM = os.environ.get("CLARIN_TEST_CHROMIUM", "/usr/bin/chromium")
INSTALL_HINT = "apt-get install -y chromium chromium-driver"
LAUNCH_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 30_000


def _browser_or_skip() -> Any:
    missing = None
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing = f"Chromium not found at {CHROMIUM} (install it: {INSTALL_HINT})"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            missing = "the playwright package is not installed (make test installs the test extras)"
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test cannot run on CI: {missing}; .ci/services.sh should have installed it")
        pytest.skip(f"SKIPPED the API docs browser test: {missing}")
    return sync_playwright


def test_try_it_out_runs_get_me_with_a_bearer_token(server: support.ServerProcess, tenant: Tenant) -> None:
    sync_playwright = _browser_or_skip()
    token = support.login(server.url, tenant.username, tenant.password)
    profile = tempfile.mkdtemp(prefix="clarin-chromium-")
    requests: list[str] = []
    problems: list[str] = []
    me_authorizations: list[str | None] = []
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=LAUNCH_FLAGS,
                viewport={"width": 1280, "height": 1600},
            )
            try:
                page = context.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                page.on("request", lambda request: requests.append(request.url))
                page.on("request", lambda request: me_authorizations.append(request.headers.get("authorization"))
                        if request.url == server.url + "/api/me" else None)
                # A CSP violation or a script error is logged to the console as an error.
                page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
                page.on("pageerror", lambda error: problems.append(str(error)))

                page.goto(server.url + "/api/docs")
                page.locator(".information-container .title").filter(has_text="Clarin CRM API").wait_for()

                # The leads tag and its operations are rendered from the document.
                leads = page.locator("#operations-tag-leads")
                leads.wait_for()
                assert page.locator('[id^="operations-leads-"]').count() >= 5
                assert page.locator("#operations-leads-get_list_leads").is_visible()

                # Authorize with the bearer token (the bearerAuth scheme of the document).
                page.locator(".auth-wrapper .btn.authorize").click()
                bearer = page.locator('input[aria-label="auth-bearer-value"]')
                bearer.fill(token)
                bearer.locator("xpath=ancestor::form").locator(".auth-btn-wrapper .btn.modal-btn.auth.authorize").click()
                page.locator(".btn.modal-btn.auth.btn-done").first.click()
                page.locator(".auth-wrapper .btn.authorize.locked").wait_for()

                # GET /api/me: expand, Try it out, Execute.
                operation = page.locator('[id$="-get_me"]').first
                operation.locator(".opblock-summary").first.click()
                operation.locator(".try-out__btn").click()
                operation.locator(".btn.execute").click()
                status = operation.locator(".live-responses-table .response .response-col_status").first
                status.wait_for()
                assert status.inner_text().strip().startswith("200"), status.inner_text()
                body = operation.locator(".live-responses-table .response-col_description pre").first.inner_text()
                assert tenant.username in body and tenant.account_id in body, body[:500]

                screenshot = Path(tempfile.gettempdir()) / "clarin-api-docs.png"
                page.screenshot(path=str(screenshot), full_page=False)
                print(f"API docs screenshot: {screenshot}")
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)

    assert me_authorizations == [f"Bearer {token}"], me_authorizations
    # Offline: every request the page made went to this server (no CDN, no validator badge, no fonts).
    foreign = [url for url in requests if not url.startswith(server.url + "/") and not url.startswith("data:")]
    assert foreign == [], foreign
    assert not [text for text in problems if "Content Security Policy" in text or "Refused" in text], problems
    assert not [text for text in problems if "favicon" not in text], problems
