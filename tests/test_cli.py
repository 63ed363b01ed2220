"""The `ulak` command line, run as the installed console script against a live test server: journeys
as code (export, apply: created / unchanged / updated, validation errors by step key), state
changes, segments, transactional email sends, exit codes and `--json`.

Each call is a real process talking HTTP to `live_server`, as in a CI job; the database is checked
directly afterwards.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from accounts import services as accounts
from accounts.models import ApiKeyKind, AppScope
from campaigns.journeys import broadcasts
from campaigns.journeys import services as journeys
from campaigns.models import BroadcastTrigger, Campaign, CampaignVersion, Journey
from campaigns.services import create_transactional_message
from channels.models import Delivery
from channels.sending import deliver
from core.context import workspace_scope
from profiles.models import Segment
from tests.support.factories import ChannelConfigFactory, ProfileFactory
from tests.support.fakes import FakeHttpServer, FakeSmtpServer, Reply, free_port

pytestmark = pytest.mark.django_db(transaction=True)

ULAK = Path(sys.executable).parent / "ulak"
PROJECT_PACKAGES = {"config", "core", "accounts", "profiles", "channels", "campaigns", "compliance", "django",
                    "rest_framework"}

PRO = {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}
WORKFLOW = {"start": "welcome", "steps": {
    "welcome": {"type": "send", "channel": "email", "content": {"subject": "Hi {{ customer.first_name }}",
                                                                "body": "<p>Welcome</p>"}, "next": "wait"},
    "wait": {"type": "delay", "duration": {"days": 1}, "next": "pro"},
    "pro": {"type": "branch", "condition": PRO, "yes": "upsell", "no": None},
    "upsell": {"type": "send", "channel": "email", "content": {"subject": "More", "body": "<p>Upgrade</p>"}},
}}
DEFINITION = {"key": "welcome", "name": "Welcome", "trigger": {"type": "event", "name": "signed_up"},
              "workflow": WORKFLOW}


def run_ulak(url: str, key: str, *args: str, stdin: str | None = None, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "ULAK_URL": url, "ULAK_APP_KEY": key, **env}
    return subprocess.run([str(ULAK), *args], capture_output=True, text=True, env=environment, input=stdin,
                          timeout=120)


@pytest.fixture
def ulak(live_server, tenant_a):
    """`ulak(*args)`: the console script with tenant_a's App API key."""
    return lambda *args, **kwargs: run_ulak(live_server.url, tenant_a.app_key, *args, **kwargs)


@pytest.fixture
def email_config(tenant_a):
    return ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", name="Mail",
                                sender="Acme <hello@acme.test>", is_default=True, tracking_enabled=False,
                                settings={"host": "127.0.0.1", "port": 9})


def write(tmp_path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def the_campaign(tenant, key="welcome") -> Campaign:
    return Campaign.unscoped.get(workspace=tenant.workspace, key=key)


def error_lines(result) -> list[str]:
    """The refused-request report: the header line, then one `field: message` a line."""
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("ulak: refused (HTTP "), result.stderr
    return lines[1:]


def test_the_console_script_is_installed_and_imports_nothing_of_the_server():
    assert ULAK.is_file(), "run make install: the ulak console script is missing"
    assert subprocess.run([str(ULAK), "--version"], capture_output=True, text=True).stdout.startswith("ulak ")
    as_module = subprocess.run([sys.executable, "-m", "ulak_cli", "--version"], capture_output=True, text=True)
    assert as_module.returncode == 0 and as_module.stdout.startswith("ulak ")
    probe = ("import sys, ulak_cli.main, ulak_cli.client, ulak_cli.files; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))")
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    loaded = subprocess.run([sys.executable, "-c", probe, *PROJECT_PACKAGES], capture_output=True, text=True, env=env,
                            cwd=Path(__file__).resolve().parent.parent)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


# --- journeys as code ------------------------------------------------------------------------------------

def test_apply_creates_then_is_unchanged_then_updates_by_key(ulak, tenant_a, tmp_path):
    path = write(tmp_path, "welcome.json", DEFINITION)

    created = ulak("campaigns", "apply", path)
    assert created.returncode == 0, created.stderr
    campaign = the_campaign(tenant_a)
    assert created.stdout.strip() == f"created campaign {campaign.pk} (welcome)"
    assert campaign.state == "draft" and campaign.name == "Welcome" and set(campaign.workflow["steps"]) == set(
        WORKFLOW["steps"])

    # The hand-written file leaves defaults out: the server stores the same definition again.
    again = ulak("campaigns", "apply", path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"unchanged campaign {campaign.pk} (welcome)"

    exported = ulak("campaigns", "export", str(campaign.pk))
    assert exported.returncode == 0, exported.stderr
    definition = json.loads(exported.stdout)
    assert list(definition) == ["key", "name", "description", "type", "trigger", "audience", "re_entry", "exit",
                                "goal", "journey_key", "workflow"]
    assert list(definition["workflow"]["steps"]) == ["welcome", "wait", "pro", "upsell"]  # reading order
    assert definition["workflow"]["steps"]["welcome"]["content"] == WORKFLOW["steps"]["welcome"]["content"]
    assert ulak("campaigns", "export", "welcome").stdout == exported.stdout  # by key, byte for byte

    # The exported file is the stored definition: applying it sends nothing (the version stays).
    exported_path = write(tmp_path, "exported.json", exported.stdout)
    version = the_campaign(tenant_a).version
    unchanged = ulak("campaigns", "apply", exported_path)
    assert unchanged.stdout.strip() == f"unchanged campaign {campaign.pk} (welcome)"
    assert the_campaign(tenant_a).version == version

    definition["workflow"]["steps"]["welcome"]["content"]["subject"] = "Welcome aboard"
    definition["workflow"]["steps"]["wait"]["duration"] = {"hours": 2}
    write(tmp_path, "exported.json", definition)
    updated = ulak("campaigns", "apply", exported_path, "--json")
    assert updated.returncode == 0, updated.stderr
    answer = json.loads(updated.stdout)
    assert answer["result"] == "updated" and answer["campaign"]["id"] == campaign.pk
    stored = the_campaign(tenant_a)
    assert stored.workflow["steps"]["welcome"]["content"]["subject"] == "Welcome aboard"
    assert stored.workflow["steps"]["wait"]["duration"] == {"hours": 2}
    assert stored.version == version == 1  # a draft's edits rewrite its version (docs/journeys.md "Versions")
    assert Campaign.unscoped.filter(workspace=tenant_a.workspace).count() == 1


def test_list_and_get(ulak, tenant_a, tmp_path):
    assert ulak("campaigns", "list").stdout.strip() == "No campaigns."
    ulak("campaigns", "apply", write(tmp_path, "welcome.json", DEFINITION))
    campaign = the_campaign(tenant_a)

    listed = ulak("campaigns", "list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.strip().splitlines()
    assert header.split() == ["ID", "KEY", "STATE", "TYPE", "STEPS", "NAME"]
    assert row.split() == [str(campaign.pk), "welcome", "draft", "triggered", "4", "Welcome"]
    raw = json.loads(ulak("campaigns", "list", "--json").stdout)
    assert [c["id"] for c in raw["campaigns"]] == [campaign.pk]

    shown = ulak("campaigns", "get", "welcome")
    assert shown.returncode == 0, shown.stderr
    assert f"id: {campaign.pk}" in shown.stdout and "state: draft" in shown.stdout
    assert "  welcome: send email" in shown.stdout and "  pro: branch" in shown.stdout
    as_json = json.loads(ulak("--json", "campaigns", "get", str(campaign.pk)).stdout)
    assert as_json["campaign"]["key"] == "welcome" and as_json["campaign"]["workflow"]["start"] == "welcome"


def test_apply_prints_the_validation_errors_by_step_key_and_stores_nothing(ulak, tenant_a, tmp_path):
    bad = json.loads(json.dumps(DEFINITION))
    del bad["workflow"]["steps"]["welcome"]["content"]["subject"]
    bad["workflow"]["steps"]["wait"]["duration"] = {"fortnights": 1}
    bad["workflow"]["steps"]["pro"]["yes"] = "missing"
    path = write(tmp_path, "bad.json", bad)

    result = ulak("campaigns", "apply", path)
    assert result.returncode == 1
    lines = error_lines(result)
    assert "workflow.steps.welcome.content.subject: is required for an email message" in lines
    assert any(line.startswith("workflow.steps.wait.duration.fortnights: unknown unit") for line in lines)
    assert "workflow.steps.pro.yes: names no step of this workflow: 'missing'" in lines
    assert len(lines) == 3
    assert not Campaign.unscoped.filter(workspace=tenant_a.workspace).exists()

    as_json = ulak("campaigns", "apply", path, "--json")
    assert as_json.returncode == 1
    fields = {error["field"] for error in json.loads(as_json.stdout)["errors"]}
    assert "workflow.steps.welcome.content.subject" in fields

    # An update refused the same way leaves the stored campaign as it was.
    assert ulak("campaigns", "apply", write(tmp_path, "good.json", DEFINITION)).returncode == 0
    version = the_campaign(tenant_a).version
    refused = ulak("campaigns", "apply", path)
    assert refused.returncode == 1 and "workflow.steps.pro.yes: names no step" in refused.stderr
    assert the_campaign(tenant_a).version == version


def test_files_the_command_cannot_use_are_usage_errors(ulak, tenant_a, tmp_path):
    keyless = {key: value for key, value in DEFINITION.items() if key != "key"}
    result = ulak("campaigns", "apply", write(tmp_path, "keyless.json", keyless))
    assert result.returncode == 2 and "has no \"key\"" in result.stderr
    broken = ulak("campaigns", "apply", write(tmp_path, "broken.json", "{\"key\": "))
    assert broken.returncode == 2 and "is not valid JSON" in broken.stderr
    missing = ulak("campaigns", "apply", str(tmp_path / "nowhere.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert ulak("campaigns", "frobnicate").returncode == 2
    assert ulak("campaigns", "stop", "1").returncode == 2  # --mode is required
    assert not Campaign.unscoped.filter(workspace=tenant_a.workspace).exists()

    # From standard input, in the envelope of `get --json` (read-only fields dropped).
    piped = ulak("campaigns", "apply", "-", stdin=json.dumps({"campaign": {**DEFINITION, "id": 999, "state": "x"}}))
    assert piped.returncode == 0, piped.stderr
    assert the_campaign(tenant_a).state == "draft"


def test_activate_pause_resume_and_stop(ulak, tenant_a, tmp_path):
    ulak("campaigns", "apply", write(tmp_path, "welcome.json", DEFINITION))
    campaign = the_campaign(tenant_a)

    # No email configuration yet: activation names each send step.
    refused = ulak("campaigns", "activate", "welcome")
    assert refused.returncode == 1
    lines = error_lines(refused)
    assert sorted(line.split(":")[0] for line in lines) == ["workflow.steps.upsell.channel",
                                                            "workflow.steps.welcome.channel"]
    assert the_campaign(tenant_a).state == "draft"

    ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", name="Mail",
                         sender="hello@acme.test", is_default=True, settings={"host": "127.0.0.1", "port": 9})
    activated = ulak("campaigns", "activate", "welcome")
    assert activated.returncode == 0, activated.stderr
    assert activated.stdout.strip() == f"campaign {campaign.pk} (welcome): active"
    assert the_campaign(tenant_a).state == "active"

    assert ulak("campaigns", "pause", str(campaign.pk)).stdout.strip().endswith(": paused")
    assert the_campaign(tenant_a).state == "paused"
    conflict = ulak("campaigns", "pause", str(campaign.pk))
    assert conflict.returncode == 1 and "only an active campaign can be paused" in conflict.stderr
    assert ulak("campaigns", "resume", "welcome").stdout.strip().endswith(": active")

    drained = ulak("campaigns", "stop", "welcome", "--mode", "drain", "--json")
    assert drained.returncode == 0 and json.loads(drained.stdout)["campaign"]["state"] == "draining"
    assert ulak("campaigns", "stop", "welcome", "--mode", "exit").stdout.strip().endswith(": stopped")
    assert the_campaign(tenant_a).state == "stopped"


def test_a_running_campaign_is_updated_only_with_a_workflow_that_can_run(ulak, tenant_a, email_config, tmp_path):
    path = write(tmp_path, "welcome.json", DEFINITION)
    ulak("campaigns", "apply", path)
    assert ulak("campaigns", "activate", "welcome").returncode == 0
    unreachable = json.loads(json.dumps(DEFINITION))
    unreachable["workflow"]["steps"]["wait"]["next"] = None
    result = ulak("campaigns", "apply", write(tmp_path, "unreachable.json", unreachable))
    assert result.returncode == 1
    assert sorted(error_lines(result)) == ["workflow.steps.pro: is unreachable from the start step",
                                           "workflow.steps.upsell: is unreachable from the start step"]
    assert the_campaign(tenant_a).workflow["steps"]["wait"]["next"] == "pro"


def test_updating_a_live_campaign_with_runs_needs_the_publish_choice(ulak, tenant_a, email_config, tmp_path):
    ulak("campaigns", "apply", write(tmp_path, "welcome.json", DEFINITION))
    assert ulak("campaigns", "activate", "welcome").returncode == 0
    campaign = the_campaign(tenant_a)
    run = Journey.unscoped.create(workspace=tenant_a.workspace, campaign=campaign, state="waiting", step="wait",
                                  seq=2, profile=ProfileFactory(workspace=tenant_a.workspace))
    shorter = json.loads(json.dumps(DEFINITION))  # `wait` removed: welcome goes straight to `pro`
    shorter["workflow"]["steps"]["welcome"]["next"] = "pro"
    del shorter["workflow"]["steps"]["wait"]
    path = write(tmp_path, "shorter.json", shorter)

    refused = ulak("campaigns", "apply", path)
    assert refused.returncode == 1
    lines = error_lines(refused)
    assert lines[0].startswith("publish: is required: 1 runs are live and the workflow changed")
    assert lines[1].startswith("say what happens to the runs already in the campaign: --runs stay|move|exit")
    preview = ulak("campaigns", "apply", path, "--preview")
    assert preview.returncode == 0, preview.stderr
    out = preview.stdout.splitlines()
    assert out[0] == f"campaign {campaign.pk} (welcome): version 1 -> 2, 1 live runs; --runs is required"
    assert out[1].split() == ["STEP", "RUNS", "CHANGE"] and ["wait", "1", "removed"] in [line.split() for line in out]
    as_json = json.loads(ulak("campaigns", "apply", path, "--preview", "--json").stdout)
    assert as_json["preview"]["live_runs"] == 1
    assert ulak("campaigns", "apply", path, "--map", "wait=pro").returncode == 2  # --map needs --runs move
    assert ulak("campaigns", "apply", path, "--runs", "move", "--map", "wait").returncode == 2
    stranded = ulak("campaigns", "apply", path, "--runs", "move")
    assert stranded.returncode == 1
    assert error_lines(stranded)[0].startswith("publish.removed.wait: 1 runs are at this step")
    assert (the_campaign(tenant_a).version, the_campaign(tenant_a).workflow["steps"]["wait"]["next"]) == (1, "pro")

    moved = ulak("campaigns", "apply", path, "--runs", "move", "--map", "wait=pro")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.strip() == f"updated campaign {campaign.pk} (welcome)"
    run.refresh_from_db()
    assert (run.version, run.step, run.state, run.wait) == (2, "pro", "active", {})
    version = CampaignVersion.unscoped.get(campaign=campaign, number=2)
    assert version.author == "API key app" and version.published["removed"] == {"wait": "pro"}


def test_apply_with_runs_stay_map_to_exit_and_runs_exit(ulak, tenant_a, email_config, tmp_path):
    """`--runs stay`, `--runs move --map OLD=` and `--runs exit`, each to a successful update, and the
    runs' state and version afterwards; a file the server finds unchanged stores nothing, whatever
    `--runs` says, and its preview says so."""
    path = write(tmp_path, "welcome.json", DEFINITION)
    ulak("campaigns", "apply", path)
    assert ulak("campaigns", "activate", "welcome").returncode == 0
    campaign = the_campaign(tenant_a)
    label = f"campaign {campaign.pk} (welcome)"
    first = Journey.unscoped.create(workspace=tenant_a.workspace, campaign=campaign, state="waiting", step="wait",
                                    seq=2, profile=ProfileFactory(workspace=tenant_a.workspace))

    # The hand-written file leaves defaults out: the server finds the stored definition.
    same = ulak("campaigns", "apply", path, "--preview")
    assert same.returncode == 0, same.stderr
    assert same.stdout.splitlines()[0] == (f"{label}: version 1 unchanged (the update stores nothing and leaves the "
                                           "runs alone), 1 live runs")
    kept = ulak("campaigns", "apply", path, "--runs", "exit")
    assert kept.returncode == 0 and kept.stdout.strip() == f"unchanged {label}", kept.stderr
    first.refresh_from_db()
    assert (the_campaign(tenant_a).version, first.state, first.version) == (1, "waiting", 1)

    shorter = json.loads(json.dumps(DEFINITION))  # `wait` removed: welcome goes straight to `pro`
    shorter["workflow"]["steps"]["welcome"]["next"] = "pro"
    del shorter["workflow"]["steps"]["wait"]
    stay = ulak("campaigns", "apply", write(tmp_path, "v2.json", shorter), "--runs", "stay")
    assert stay.returncode == 0 and stay.stdout.strip() == f"updated {label}", stay.stderr
    first.refresh_from_db()
    assert (first.state, first.step, first.version) == ("waiting", "wait", 1)  # on version 1's workflow still
    assert CampaignVersion.unscoped.get(campaign=campaign, number=2).published == {
        "runs": "stay", "removed": {}, "affected": {"wait": 1}}

    # `--map wait=`: the version-1 run at `wait` (a step version 2 already lacks) exits.
    mapped = ulak("campaigns", "apply", write(tmp_path, "v3.json", {**shorter, "description": "third"}),
                  "--runs", "move", "--map", "wait=")
    assert mapped.returncode == 0 and mapped.stdout.strip() == f"updated {label}", mapped.stderr
    first.refresh_from_db()
    assert (first.state, first.exit_reason, first.version, first.next_run_at) == ("exited", "version_removed_step", 1,
                                                                                  None)
    assert CampaignVersion.unscoped.get(campaign=campaign, number=3).published == {
        "runs": "move", "removed": {"wait": None}, "affected": {"wait": 1}}

    second = Journey.unscoped.create(workspace=tenant_a.workspace, campaign=campaign, state="waiting", step="pro",
                                     seq=2, version=3, profile=ProfileFactory(workspace=tenant_a.workspace))
    ended = ulak("campaigns", "apply", write(tmp_path, "v4.json", {**shorter, "description": "fourth"}),
                 "--runs", "exit")
    assert ended.returncode == 0 and ended.stdout.strip() == f"updated {label}", ended.stderr
    second.refresh_from_db()
    assert (second.state, second.exit_reason, second.version) == ("exited", "version_exit", 3)
    assert the_campaign(tenant_a).version == 4
    assert CampaignVersion.unscoped.get(campaign=campaign, number=4).published == {
        "runs": "exit", "removed": {}, "affected": {"pro": 1}}
    assert set(Journey.unscoped.filter(campaign=campaign).values_list("state", flat=True)) == {"exited"}


def test_preview_needs_only_a_read_key_and_sees_only_its_workspace(live_server, tenant_a, tenant_b, email_config,
                                                                  tmp_path):
    """`apply --preview` reads only (GET, POST publish_preview): a `read` key may run it, not the update."""
    campaign = journeys.activate_campaign(campaign=journeys.create_campaign(workspace=tenant_a.workspace,
                                                                           definition=DEFINITION))
    Journey.unscoped.create(workspace=tenant_a.workspace, campaign=campaign, state="waiting", step="wait", seq=2,
                            profile=ProfileFactory(workspace=tenant_a.workspace))
    shorter = json.loads(json.dumps(DEFINITION))
    shorter["workflow"]["steps"]["welcome"]["next"] = "pro"
    del shorter["workflow"]["steps"]["wait"]
    path = write(tmp_path, "shorter.json", shorter)
    _, reader = accounts.create_api_key(workspace=tenant_a.workspace, kind=ApiKeyKind.APP, name="ci-read",
                                        scopes=[AppScope.READ])

    preview = run_ulak(live_server.url, reader, "campaigns", "apply", path, "--preview")
    assert preview.returncode == 0, preview.stderr
    assert preview.stdout.splitlines()[0] == f"campaign {campaign.pk} (welcome): version 1 -> 2, 1 live runs; " \
                                             "--runs is required"
    checked = run_ulak(live_server.url, reader, "campaigns", "apply", path, "--preview", "--runs", "move")
    assert checked.returncode == 1 and error_lines(checked)[0].startswith("publish.removed.wait: 1 runs are at")
    refused = run_ulak(live_server.url, reader, "campaigns", "apply", path, "--runs", "move", "--map", "wait=")
    assert refused.returncode == 1 and "(HTTP 403)" in refused.stderr
    assert (the_campaign(tenant_a).version, set(the_campaign(tenant_a).workflow["steps"])) == (1, set(WORKFLOW["steps"]))

    # Another workspace's campaign of the same key is not this key's: a preview of a campaign to create.
    theirs = journeys.create_campaign(workspace=tenant_b.workspace, definition={**DEFINITION, "key": "theirs"})
    other = run_ulak(live_server.url, reader, "campaigns", "apply", write(tmp_path, "theirs.json",
                                                                          {**shorter, "key": "theirs"}), "--preview")
    assert other.returncode == 0 and other.stdout.strip() == "would create a campaign (theirs): no run is in it yet"
    theirs.refresh_from_db()
    assert theirs.version == 1 and "wait" in theirs.workflow["steps"]
    assert not Campaign.unscoped.filter(workspace=tenant_a.workspace, key="theirs").exists()


# --- tenancy, keys, the server --------------------------------------------------------------------------

def test_another_workspaces_campaign_is_not_found(ulak, tenant_a, tenant_b, tmp_path):
    theirs = journeys.create_campaign(workspace=tenant_b.workspace, definition={**DEFINITION, "key": "theirs"})
    for args in (("get", str(theirs.pk)), ("export", str(theirs.pk)), ("activate", str(theirs.pk)),
                 ("stop", str(theirs.pk), "--mode", "exit"), ("get", "theirs")):
        result = ulak("campaigns", *args)
        assert result.returncode == 1, args
        assert "not found" in result.stderr.lower(), (args, result.stderr)

    # The same key in a file is this workspace's own campaign: a new one, theirs is untouched.
    created = ulak("campaigns", "apply", write(tmp_path, "theirs.json", {**DEFINITION, "key": "theirs",
                                                                         "name": "Ours"}))
    assert created.stdout.startswith("created campaign ")
    theirs.refresh_from_db()
    assert theirs.name == "Welcome" and theirs.version == 1
    assert the_campaign(tenant_a, "theirs").name == "Ours"


def test_a_bad_key_or_a_read_only_key_is_refused(live_server, tenant_a, tmp_path):
    path = write(tmp_path, "welcome.json", DEFINITION)
    bad = run_ulak(live_server.url, "ulk_app_wrong", "campaigns", "list")
    assert bad.returncode == 1 and "Invalid or revoked API credentials." in bad.stderr

    _, reader = accounts.create_api_key(workspace=tenant_a.workspace, kind=ApiKeyKind.APP, name="ci-read",
                                        scopes=[AppScope.READ])
    assert run_ulak(live_server.url, reader, "campaigns", "list").returncode == 0
    refused = run_ulak(live_server.url, reader, "campaigns", "apply", path)
    assert refused.returncode == 1 and "(HTTP 403)" in refused.stderr
    assert not Campaign.unscoped.filter(workspace=tenant_a.workspace).exists()

    # --key and --url override the environment.
    flags = run_ulak("http://127.0.0.1:1", "ulk_app_wrong", "--url", live_server.url, "--key", tenant_a.app_key,
                     "campaigns", "list")
    assert flags.returncode == 0, flags.stderr


def test_an_unreachable_or_failing_server_exits_3(tenant_a):
    gone = run_ulak(f"http://127.0.0.1:{free_port()}", tenant_a.app_key, "campaigns", "list")
    assert gone.returncode == 3 and "cannot reach" in gone.stderr

    failing = lambda request: Reply(500, {"meta": {"error": "Internal error."}, "errors": []})  # noqa: E731
    with FakeHttpServer(failing) as server:
        result = run_ulak(server.url, tenant_a.app_key, "campaigns", "list")
    assert result.returncode == 3 and "HTTP 500" in result.stderr

    not_ulak = lambda request: Reply(200, "<html>hello</html>", {"Content-Type": "text/html"})  # noqa: E731
    with FakeHttpServer(not_ulak) as server:
        result = run_ulak(server.url, tenant_a.app_key, "campaigns", "list")
    assert result.returncode == 3 and "not JSON" in result.stderr

    unset = run_ulak("", tenant_a.app_key, "campaigns", "list")
    assert unset.returncode == 2 and "ULAK_URL" in unset.stderr


# --- broadcasts -----------------------------------------------------------------------------------------

SALE = {"key": "sale", "name": "Sale", "type": "broadcast", "workflow": {"start": "mail", "steps": {
    "mail": {"type": "send", "channel": "email", "content": {"subject": "Sale {{ trigger.code }}", "body": "x"}}}}}


def test_broadcasts_trigger_by_ids_file_then_status(ulak, tenant_a, email_config, tmp_path, broker):
    for n in range(2):
        ProfileFactory(workspace=tenant_a.workspace, external_id=f"p{n}", email=f"p{n}@example.test")
    assert ulak("campaigns", "apply", write(tmp_path, "sale.json", SALE)).returncode == 0
    assert ulak("campaigns", "activate", "sale").returncode == 0
    ids = write(tmp_path, "ids.txt", "# who gets the sale\np0\n\np1\nnobody\n")

    triggered = ulak("broadcasts", "trigger", "sale", "--data", '{"code": "SPRING"}', "--ids-file", ids,
                     "--idempotency-key", "sale-1")
    assert triggered.returncode == 0, triggered.stderr
    trigger = BroadcastTrigger.unscoped.get(workspace=tenant_a.workspace)
    assert triggered.stdout.strip() == str(trigger.pk)
    assert trigger.data == {"code": "SPRING"} and trigger.audience["values"] == ["p0", "p1", "nobody"]
    retried = ulak("broadcasts", "trigger", "sale", "--data", '{"code": "SPRING"}', "--ids-file", ids,
                   "--idempotency-key", "sale-1", "--json")
    assert json.loads(retried.stdout) == {"id": trigger.pk}
    assert BroadcastTrigger.unscoped.filter(workspace=tenant_a.workspace).count() == 1

    assert broadcasts.start_due() == 1  # what the worker does when the trigger is due
    status = ulak("broadcasts", "status", "sale", str(trigger.pk))
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines() == [f"id: {trigger.pk}", "state: completed", "recipients: 2", "error_count: 1",
                                          "  nobody: no person has this id"]

    emails = write(tmp_path, "emails.txt", "p1@example.test\n")
    by_email = ulak("broadcasts", "trigger", "sale", "--emails-file", emails)
    assert by_email.returncode == 0, by_email.stderr
    assert BroadcastTrigger.unscoped.get(pk=int(by_email.stdout)).audience["values"] == ["p1@example.test"]
    both = ulak("broadcasts", "trigger", "sale", "--ids-file", ids, "--emails-file", emails)
    assert both.returncode == 2
    empty = ulak("broadcasts", "trigger", "sale", "--ids-file", write(tmp_path, "none.txt", "# nobody\n"))
    assert empty.returncode == 2 and "lists nobody" in empty.stderr


def test_broadcasts_trigger_refusals(ulak, tenant_a, tenant_b, email_config, tmp_path, broker):
    assert ulak("campaigns", "apply", write(tmp_path, "sale.json", SALE)).returncode == 0
    draft = ulak("broadcasts", "trigger", "sale")
    assert draft.returncode == 1 and "(HTTP 409)" in draft.stderr and "activate it first" in draft.stderr
    ulak("campaigns", "apply", write(tmp_path, "welcome.json", DEFINITION))
    assert ulak("campaigns", "activate", "welcome").returncode == 0
    triggered_kind = ulak("broadcasts", "trigger", "welcome")
    assert triggered_kind.returncode == 1 and "campaign: is a triggered campaign" in error_lines(triggered_kind)[0]
    assert ulak("broadcasts", "trigger", "sale", "--data", "not json").returncode == 2

    theirs = journeys.create_campaign(workspace=tenant_b.workspace, definition={**SALE, "key": "theirs"})
    other = ulak("broadcasts", "trigger", str(theirs.pk))
    assert other.returncode == 1 and "not found" in other.stderr.lower()
    assert not BroadcastTrigger.unscoped.exists()


# --- segments -------------------------------------------------------------------------------------------

def test_segments_apply_by_name_and_export(ulak, tenant_a, tenant_b, tmp_path):
    path = write(tmp_path, "pro.json", {"name": "Pro plan", "description": "Paying", "conditions": PRO})
    created = ulak("segments", "apply", path)
    assert created.returncode == 0, created.stderr
    segment = Segment.unscoped.get(workspace=tenant_a.workspace, name="Pro plan")
    assert created.stdout.strip() == f"created segment {segment.pk} (Pro plan)"
    assert segment.kind == "data" and segment.description == "Paying"

    exported = ulak("segments", "export", "Pro plan")
    assert exported.returncode == 0, exported.stderr
    definition = json.loads(exported.stdout)
    assert definition == {"name": "Pro plan", "description": "Paying", "type": "dynamic",
                          "conditions": segment.conditions}
    assert ulak("segments", "export", str(segment.pk)).stdout == exported.stdout
    assert ulak("segments", "apply", write(tmp_path, "exported.json", exported.stdout)).stdout.strip() == \
        f"unchanged segment {segment.pk} (Pro plan)"

    definition["conditions"] = {"attribute": {"field": "plan", "operator": "eq", "value": "enterprise"}}
    updated = ulak("segments", "apply", write(tmp_path, "exported.json", definition))
    assert updated.stdout.strip() == f"updated segment {segment.pk} (Pro plan)"
    segment.refresh_from_db()
    assert segment.conditions["attribute"]["value"] == "enterprise"

    listed = ulak("segments", "list").stdout.strip().splitlines()
    assert listed[0].split() == ["ID", "TYPE", "STATE", "MEMBERS", "NAME"]
    assert listed[1].split()[:2] == [str(segment.pk), "dynamic"] and listed[1].endswith("Pro plan")

    retyped = ulak("segments", "apply", write(tmp_path, "manual.json", {**definition, "type": "manual"}))
    assert retyped.returncode == 1 and "segment.type: cannot be changed" in error_lines(retyped)
    bad = ulak("segments", "apply", write(tmp_path, "bad.json", {"name": "Broken", "conditions": {"nope": {}}}))
    assert bad.returncode == 1 and error_lines(bad)[0].startswith("segment.conditions")
    assert not Segment.unscoped.filter(workspace=tenant_a.workspace, name="Broken").exists()
    misspelt = ulak("segments", "apply", write(tmp_path, "typo.json", {"name": "Typo", "condition": PRO}))
    assert misspelt.returncode == 2 and "unknown field 'condition'" in misspelt.stderr
    assert not Segment.unscoped.filter(workspace=tenant_a.workspace, name="Typo").exists()

    theirs = Segment.unscoped.create(workspace=tenant_b.workspace, name="Theirs", kind="manual")
    result = ulak("segments", "export", str(theirs.pk))
    assert result.returncode == 1 and "(HTTP 404)" in result.stderr
    by_name = ulak("segments", "export", "Theirs")
    assert by_name.returncode == 1 and "Segment not found" in by_name.stderr


# --- transactional email --------------------------------------------------------------------------------

@pytest.fixture
def smtp():
    with FakeSmtpServer() as server:
        yield server


@pytest.fixture
def mail(tenant_a, smtp):
    return ChannelConfigFactory(workspace=tenant_a.workspace, type="email", provider="smtp", name="Mail",
                                sender="Acme <hello@acme.test>", is_default=True, tracking_enabled=False,
                                settings={"host": "127.0.0.1", "port": smtp.port})


def send_now(tenant, delivery_id: str):
    """What the email worker does with the queued delivery."""
    delivery = Delivery.unscoped.get(workspace=tenant.workspace, public_id=delivery_id)
    with workspace_scope(tenant.workspace):
        outcome = deliver(delivery.pk)
    assert outcome.result == "sent", outcome.detail


def test_send_email_inline_and_by_message_reaches_the_smtp_server(ulak, tenant_a, mail, smtp, broker):
    inline = ulak("send", "email", "--to", "ada@example.com", "--subject", "Hi {{ trigger.name }}",
                  "--body", "<p>Plan {{ trigger.plan }}</p>", "--data", '{"name": "Ada", "plan": "pro"}')
    assert inline.returncode == 0, inline.stderr
    send_now(tenant_a, inline.stdout.strip())

    create_transactional_message(workspace=tenant_a.workspace, name="receipt", channel="email",
                                 subject="Receipt {{ trigger.order }}", body="<p>Thanks</p>")
    ProfileFactory(workspace=tenant_a.workspace, external_id="grace-1", email="grace@example.com")
    by_name = ulak("send", "email", "--to", "grace@example.com", "--id", "grace-1", "--message", "receipt",
                   "--data", '{"order": "A-7"}', "--json")
    assert by_name.returncode == 0, by_name.stderr
    send_now(tenant_a, json.loads(by_name.stdout)["delivery_id"])

    (_, first_to, first), (_, second_to, second) = smtp.messages
    assert first_to == ["ada@example.com"] and first["Subject"] == "Hi Ada"
    assert "Plan pro" in first.get_body(preferencelist=("html",)).get_content()
    assert second_to == ["grace@example.com"] and second["Subject"] == "Receipt A-7"


def test_send_email_refusals_and_usage_errors(ulak, tenant_a, mail, broker):
    unknown = ulak("send", "email", "--to", "ada@example.com", "--message", "nope")
    assert unknown.returncode == 1 and "transactional_message_id" in unknown.stderr
    assert ulak("send", "email", "--to", "ada@example.com", "--subject", "Only a subject").returncode == 2
    assert ulak("send", "email", "--to", "ada@example.com", "--subject", "S", "--body", "B",
                "--data", "[1]").returncode == 2
    bad_address = ulak("send", "email", "--to", "not-an-address", "--subject", "S", "--body", "B")
    assert bad_address.returncode == 1 and error_lines(bad_address)[0].startswith("identifiers.email")
    assert not Delivery.unscoped.filter(workspace=tenant_a.workspace).exists()

    # An idempotency key: the retry answers the same delivery.
    args = ("send", "email", "--to", "ada@example.com", "--subject", "S", "--body", "B", "--idempotency-key", "k-1")
    first, retry = ulak(*args), ulak(*args)
    assert first.returncode == retry.returncode == 0
    assert first.stdout == retry.stdout
    assert Delivery.unscoped.filter(workspace=tenant_a.workspace).count() == 1
