"""Browser tests: Playwright for Python driving Debian's Chromium (no browser is downloaded).

Where no Chromium is installed they skip, saying so; .ci/run installs Debian's `chromium` package,
so CI always runs them. Screenshots of each page visited go to artifacts/screenshots/ (git-ignored).
Each page records what a browser would complain about: Content-Security-Policy violations,
console errors, uncaught exceptions and requests to any host but the live server's; the tests
assert there are none."""

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path(os.environ.get("ULAK_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PASSWORD = "pass-word-123"  # UserFactory's

# Records CSP violations in the page (the browser also logs them to the console).
WATCH_CSP = """document.addEventListener("securitypolicyviolation", (e) => {
  (window.__ulakCsp = window.__ulakCsp || []).push(e.violatedDirective + " " + e.blockedURI);
});"""


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}: install Debian's chromium package "
                    "(apt-get install -y chromium) or set ULAK_CHROMIUM; CI installs it")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread while it runs; Django refuses
    # database calls from a thread with a running loop unless told the calls are synchronous
    # (they are: the tests' own ORM calls). Set for this module's tests only.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Console:
    """One browser tab on the live server, with what went wrong in it."""

    def __init__(self, page, base_url: str):
        self.page, self.base_url = page, base_url
        self.problems: list[str] = []
        host = urlsplit(base_url).netloc
        page.on("console", lambda msg: msg.type == "error" and self.problems.append(f"console: {msg.text}"))
        page.on("pageerror", lambda exc: self.problems.append(f"exception: {exc}"))
        page.on("request", lambda request: urlsplit(request.url).netloc not in (host, "")
                and self.problems.append(f"request to another host: {request.url}"))
        page.add_init_script(WATCH_CSP)

    def goto(self, path: str):
        response = self.page.goto(self.base_url + path)
        self.check()
        return response

    def log_in(self, user, password: str = PASSWORD):
        self.goto("/admin/login/?next=/admin/")
        self.page.fill("input[name=username]", user.email)
        self.page.fill("input[name=password]", password)
        with self.page.expect_navigation():
            self.page.click("input[type=submit]")
        self.check()

    def check(self):
        self.problems += [f"CSP: {v}" for v in self.page.evaluate("window.__ulakCsp || []")]

    def screenshot(self, name: str):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"), full_page=True)


@pytest.fixture
def console(browser, live_server):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    tab = Console(page, live_server.url)
    yield tab
    tab.check()
    context.close()
    assert tab.problems == [], tab.problems
