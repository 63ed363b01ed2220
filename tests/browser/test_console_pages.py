"""Every list page of the console, as the owner sees it at 1440 × 900 with data in it: it opens,
fits the page's width (no sideways scrolling of the whole page), and is saved as a screenshot
(artifacts/screenshots/pages-*.png). No CSP violation, script error or other host on any."""

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from tests.support.console import fill


def test_every_list_page_opens_and_fits_the_width(console, tenant_a):
    fill(tenant_a.workspace, now=timezone.now(), campaigns=2, per_day=3)
    console.log_in(tenant_a.owner)
    page = console.page
    wide = []
    for model in sorted(admin.site._registry, key=lambda m: m._meta.label):
        opts = model._meta
        if opts.app_label == "django_celery_beat":
            continue  # the scheduler's own pages (installation superusers only)
        response = console.goto(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        if response.status == 403:
            continue
        page.wait_for_load_state("networkidle")
        assert response.status == 200, (opts.label, response.status)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 1:
            wide.append((opts.label, overflow))
        console.screenshot(f"pages-{opts.app_label}-{opts.model_name}")
    assert wide == [], f"pages wider than the window (label, extra pixels): {wide}"
