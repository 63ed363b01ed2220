"""`Model.unscoped` outside tests only where tests/unscoped_allowlist.py says why (docs/tenancy.md)."""

import re
import subprocess
from pathlib import Path

from tests.unscoped_allowlist import ALLOWED

ROOT = Path(__file__).resolve().parents[1]
USE = re.compile(r"\.unscoped\b")


def source_files():
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        path = Path(name)
        if path.parts[0] == "tests" or "migrations" in path.parts or path.name == "conftest.py":
            continue
        if (ROOT / path).exists():
            yield path


def uses() -> set[tuple[str, str]]:
    found = set()
    for path in source_files():
        for line in (ROOT / path).read_text().splitlines():
            if USE.search(line):
                found.add((path.as_posix(), line.strip()))
    return found


def test_every_unscoped_use_outside_tests_is_listed_with_a_reason():
    unlisted = sorted(uses() - set(ALLOWED))
    assert unlisted == [], (
        "use Model.objects.for_workspace(ws), or add the line to tests/unscoped_allowlist.py with why "
        f"it must see every workspace: {unlisted}")


def test_the_allowlist_names_only_uses_that_exist():
    assert sorted(set(ALLOWED) - uses()) == []
    assert all(reason.strip() for reason in ALLOWED.values())


def test_the_scan_finds_uses():
    # The pattern the scan relies on matches the forms in use (a chained call on the next line too).
    assert USE.search("ApiKey.unscoped.select_related('workspace')")
    assert USE.search("x = (Delivery.unscoped") and not USE.search("Delivery.objects.for_workspace(ws)")
