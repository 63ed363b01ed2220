"""Importing people from a CSV file in the browser, with a real Celery worker doing the work:
upload 1,000 rows, map the columns, see the preview, start, and watch the progress finish without
reloading the page; then the people are there, applied by the ingest processor."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection

from profiles.models import Profile
from tests.helpers import stop_worker, wait_until

ROOT = Path(__file__).resolve().parents[2]
ROWS = 1000


def worker():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test",
           "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
           "ULAK_CACHE_PREFIX": settings.CACHES["default"]["KEY_PREFIX"]}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default,ingest", "--pool", "solo",
               "--loglevel", "WARNING", "--without-mingle", "--without-gossip", "--without-heartbeat"]
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_import_a_csv_of_a_thousand_people_and_watch_it_finish(console, tenant_a, tenant_b):
    data = "customer_id,email,plan\n" + "".join(
        f"c{n},person{n}@example.com,{'pro' if n % 3 else 'free'}\n" for n in range(ROWS - 1)) + "c-bad,not-an-email,pro\n"
    running = worker()
    try:
        console.log_in(tenant_a.owner)
        page = console.page
        console.goto("/admin/profiles/peopleimport/add/")
        page.set_input_files("input[type=file]", {"name": "people.csv", "mimeType": "text/csv",
                                                  "buffer": data.encode()})
        with page.expect_navigation():
            page.click("input[type=submit]")
        assert "/map/" in page.url
        assert page.input_value("#target-0") == "id" and page.input_value("#target-1") == "email"
        assert page.locator("#import-preview tbody tr").count() == 10
        console.screenshot("people-import-mapping")
        with page.expect_navigation():
            page.click("input[name=start]")
        page.wait_for_selector('[data-ulak-progress-state="done"]', timeout=60_000)
        assert page.inner_text('[data-progress-field="done"]') == str(ROWS)
        assert page.inner_text('[data-progress-field="staged"]') == str(ROWS - 1)
        assert page.inner_text('[data-progress-field="rejected"]') == "1"
        assert "email" in page.inner_text("[data-progress-errors] tbody")
        console.screenshot("people-import-done")
        assert wait_until(lambda: Profile.objects.for_workspace(tenant_a.workspace).count() == ROWS - 1, timeout=60)
        assert not Profile.objects.for_workspace(tenant_b.workspace).exists()
    finally:
        stop_worker(running)
