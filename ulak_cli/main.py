"""`ulak`: campaigns, broadcasts, segments and sends from the command line, through the App API
only (docs/cli.md). Journeys as code: `ulak campaigns export ID > welcome.json`, review the file in
git, `ulak campaigns apply welcome.json` in CI.

The server and key come from ULAK_URL and ULAK_APP_KEY (or --url and --key). Exit codes: 0 done,
1 the server refused (4xx; each error printed as `field: message`), 2 a usage error (nothing was
sent), 3 the server could not be reached or failed (5xx). `--json` prints the server's JSON answer
as it is, for scripts (errors too, on standard output).

This package imports nothing of the server (no Django): it is a client like any other.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ulak_cli import files
from ulak_cli.client import (
    EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE, CliError, Client, Refused, UsageError,
)

__all__ = ["main", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "EXIT_UNAVAILABLE"]


class Context:
    def __init__(self, args):
        self.args = args
        self.as_json = bool(getattr(args, "json", False))
        self._client = None

    @property
    def client(self) -> Client:
        if self._client is None:
            url = getattr(self.args, "url", None) or os.environ.get("ULAK_URL", "")
            key = getattr(self.args, "key", None) or os.environ.get("ULAK_APP_KEY", "")
            timeout = getattr(self.args, "timeout", None)
            if timeout is not None and timeout <= 0:
                raise UsageError("--timeout must be a number of seconds above 0")
            self._client = Client(url, key, timeout=timeout or 30.0)
        return self._client

    def call(self, method: str, path: str, body=None, **kwargs):
        return self.client.request(method, path, body, **kwargs)

    def out(self, text: str = "") -> None:
        print(text)

    def raw(self, answer) -> None:
        print(json.dumps(answer, indent=2, ensure_ascii=False))


def table(rows: list[list], header: list[str]) -> str:
    cells = [header] + [["" if value is None else str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)


def parse_json_option(value: str | None, option: str) -> dict | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise UsageError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{option} must be a JSON object, e.g. '{{\"plan\": \"pro\"}}'")
    return data


# --- campaigns ----------------------------------------------------------------------------------------

def find_campaign(ctx: Context, ref: str) -> dict:
    """`ref`: a campaign's id, or its key (looked up in the list). → the campaign's full answer."""
    if ref.isascii() and ref.isdecimal():
        return ctx.call("GET", f"/v1/campaigns/{int(ref)}")["campaign"]
    match = campaign_by_key(ctx, ref)
    if match is None:
        raise Refused(f"Campaign not found: no campaign has the key {ref!r}.", status=404)
    return ctx.call("GET", f"/v1/campaigns/{match['id']}")["campaign"]


def campaign_by_key(ctx: Context, key: str) -> dict | None:
    campaigns = ctx.call("GET", "/v1/campaigns")["campaigns"]
    return next((c for c in campaigns if c.get("key") == key), None)


def campaign_label(campaign: dict) -> str:
    key = campaign.get("key")
    return f"campaign {campaign['id']}" + (f" ({key})" if key else "")


def campaigns_list(ctx: Context) -> int:
    answer = ctx.call("GET", "/v1/campaigns")
    if ctx.as_json:
        ctx.raw(answer)
        return EXIT_OK
    rows = [[c.get("id"), c.get("key") or "-", c.get("state"), c.get("type"), len(c.get("actions") or ()),
             c.get("name")] for c in answer["campaigns"]]
    ctx.out(table(rows, ["ID", "KEY", "STATE", "TYPE", "STEPS", "NAME"]) if rows else "No campaigns.")
    return EXIT_OK


def campaigns_get(ctx: Context) -> int:
    campaign = find_campaign(ctx, ctx.args.campaign)
    if ctx.as_json:
        ctx.raw({"campaign": campaign})
        return EXIT_OK
    for name in ("id", "key", "name", "type", "state", "version"):
        ctx.out(f"{name}: {campaign.get(name) if campaign.get(name) not in (None, '') else '-'}")
    ctx.out(f"trigger: {json.dumps(campaign.get('trigger'), sort_keys=True)}")
    start = (campaign.get("workflow") or {}).get("start")
    ctx.out(f"steps (start: {start or '-'}):")
    for action in campaign.get("actions") or ():
        detail = f" {action['channel']}" if action.get("channel") else ""
        name = f" — {action['name']}" if action.get("name") else ""
        ctx.out(f"  {action['id']}: {action['type']}{detail}{name}")
    return EXIT_OK


def campaigns_export(ctx: Context) -> int:
    campaign = find_campaign(ctx, ctx.args.campaign)
    sys.stdout.write(files.dumps(files.campaign_definition(campaign)))
    return EXIT_OK


def campaigns_apply(ctx: Context) -> int:
    """Create or update (PUT) the campaign whose `key` the file names. Unchanged: the file holds
    exactly the stored definition (nothing is sent), or the server stored the same definition
    again (the file left out defaults or wrote a value in another accepted form). An update of a
    campaign that has been live sends the publish choice of `--runs` and `--map` (docs/journeys.md
    "Versions"); `--preview` prints the dry count of the update instead and changes nothing."""
    publish = publish_choice(ctx.args)
    definition = files.campaign_file(ctx.args.file)
    existing = campaign_by_key(ctx, definition["key"])
    if existing is None:
        if ctx.args.preview:
            return previewed(ctx, None, definition)
        answer = ctx.call("POST", "/v1/campaigns", definition)
        return applied(ctx, "created", answer, "campaign")
    current = ctx.call("GET", f"/v1/campaigns/{existing['id']}")
    before = files.campaign_definition(current["campaign"])
    if set(definition) <= set(files.CAMPAIGN_FIELDS) and \
            all(definition.get(name) == before[name] for name in files.CAMPAIGN_FIELDS):
        return applied(ctx, "unchanged", current, "campaign")
    body = {**definition, "publish": publish} if publish else definition
    if ctx.args.preview:
        return previewed(ctx, current["campaign"], body)
    try:
        answer = ctx.call("PUT", f"/v1/campaigns/{existing['id']}", body)
    except Refused as error:
        if any(str(item.get("field") or "").startswith("publish") for item in error.errors if isinstance(item, dict)):
            error.errors.append({"field": None, "message": PUBLISH_HINT})
        raise
    same = files.campaign_definition(answer["campaign"]) == before
    return applied(ctx, "unchanged" if same else "updated", answer, "campaign")


PUBLISH_HINT = ("say what happens to the runs already in the campaign: --runs stay|move|exit, and with move "
                "--map OLD=NEW (or OLD= : they exit) for each removed step where runs are; --preview counts them")


def publish_choice(args) -> dict | None:
    """`--runs` and `--map OLD=NEW` → the `publish` of the update body (None without --runs)."""
    if args.map and args.runs != "move":
        raise UsageError("--map goes with --runs move")
    if args.runs is None:
        return None
    removed: dict = {}
    for item in args.map or ():
        old, sep, new = item.partition("=")
        if not sep or not old.strip():
            raise UsageError(f"--map {item}: use OLD=NEW (a removed step, a step of the new workflow) or OLD= "
                             "(its runs exit)")
        removed[old.strip()] = new.strip() or None
    return {"runs": args.runs, **({"removed": removed} if removed else {})}


def previewed(ctx: Context, campaign: dict | None, body: dict) -> int:
    """The dry count of an update (POST .../publish_preview: nothing is stored)."""
    if campaign is None:
        if ctx.as_json:
            ctx.raw({"result": "would create", "preview": None})
        else:
            ctx.out(f"would create a campaign ({body['key']}): no run is in it yet")
        return EXIT_OK
    answer = ctx.call("POST", f"/v1/campaigns/{campaign['id']}/publish_preview", body)
    if ctx.as_json:
        ctx.raw(answer)
        return EXIT_OK
    preview = answer["preview"]
    if preview.get("changed", True):
        version = f"version {preview['version']} -> {preview['next_version']}"
    else:  # the server finds the stored definition: the update would store nothing, --runs would do nothing
        version = f"version {preview['version']} unchanged (the update stores nothing and leaves the runs alone)"
    ctx.out(f"{campaign_label(campaign)}: {version}, "
            f"{preview['live_runs']} live runs" + ("; --runs is required" if preview["publish_required"] else ""))
    rows = [[step["key"] or "-", step["runs"], step["change"] + (" (type changed)" if step["type_changed"] else "")]
            for step in preview["steps"]]
    ctx.out(table(rows, ["STEP", "RUNS", "CHANGE"]))
    if preview["added"]:
        ctx.out("added: " + ", ".join(preview["added"]))
    return EXIT_OK


def applied(ctx: Context, result: str, answer: dict, kind: str) -> int:
    if ctx.as_json:
        ctx.raw({"result": result, **answer})
    else:
        item = answer[kind]
        label = campaign_label(item) if kind == "campaign" else f"segment {item['id']} ({item.get('name')})"
        ctx.out(f"{result} {label}")
    return EXIT_OK


def campaigns_state(action: str):
    def run(ctx: Context) -> int:
        campaign = find_campaign(ctx, ctx.args.campaign)
        body = {"mode": ctx.args.mode} if action == "stop" else None
        answer = ctx.call("POST", f"/v1/campaigns/{campaign['id']}/{action}", body)
        if ctx.as_json:
            ctx.raw(answer)
        else:
            ctx.out(f"{campaign_label(answer['campaign'])}: {answer['campaign']['state']}")
        return EXIT_OK
    return run


# --- broadcasts ---------------------------------------------------------------------------------------

def broadcasts_trigger(ctx: Context) -> int:
    args = ctx.args
    body: dict = {"data": parse_json_option(args.data, "--data") or {}}
    if args.ids_file:
        body["ids"] = files.read_lines(args.ids_file)
    elif args.emails_file:
        body["emails"] = files.read_lines(args.emails_file)
    if body.get("ids") == [] or body.get("emails") == []:
        raise UsageError(f"{args.ids_file or args.emails_file} lists nobody (one identifier a line)")
    campaign = find_campaign(ctx, args.campaign)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    answer = ctx.call("POST", f"/v1/campaigns/{campaign['id']}/triggers", body, headers=headers)
    if ctx.as_json:
        ctx.raw(answer)
    else:
        ctx.out(str(answer["id"]))
    return EXIT_OK


def broadcasts_status(ctx: Context) -> int:
    """A trigger's state and counts, and the identifiers it could not reach (every page)."""
    campaign = find_campaign(ctx, ctx.args.campaign)
    path = f"/v1/campaigns/{campaign['id']}/triggers/{ctx.args.trigger}"
    trigger = ctx.call("GET", path)["trigger"]
    errors, start = [], None
    while True:
        page = ctx.call("GET", path + "/errors", query={"limit": 1000, "start": start})
        errors.extend(page["errors"])
        start = page.get("next")
        if not start:
            break
    if ctx.as_json:
        ctx.raw({"trigger": trigger, "errors": errors})
        return EXIT_OK
    for name in ("id", "state", "recipients", "error_count"):
        ctx.out(f"{name}: {trigger.get(name)}")
    if trigger.get("error"):
        ctx.out(f"error: {trigger['error']}")
    for row in errors:
        ctx.out(f"  {row.get('identifier')}: {row.get('reason')}")
    return EXIT_OK


# --- segments -----------------------------------------------------------------------------------------

def find_segment(ctx: Context, ref: str) -> dict:
    """`ref`: a segment's id, or its name (unique in a workspace)."""
    if ref.isascii() and ref.isdecimal():
        return ctx.call("GET", f"/v1/segments/{int(ref)}")["segment"]
    match = segment_by_name(ctx, ref)
    if match is None:
        raise Refused(f"Segment not found: no segment is named {ref!r}.", status=404)
    return match


def segment_by_name(ctx: Context, name: str) -> dict | None:
    segments = ctx.call("GET", "/v1/segments")["segments"]
    return next((s for s in segments if s.get("name") == name), None)


def segments_list(ctx: Context) -> int:
    answer = ctx.call("GET", "/v1/segments")
    if ctx.as_json:
        ctx.raw(answer)
        return EXIT_OK
    rows = [[s.get("id"), s.get("type"), s.get("state"), s.get("member_count"), s.get("name")]
            for s in answer["segments"]]
    ctx.out(table(rows, ["ID", "TYPE", "STATE", "MEMBERS", "NAME"]) if rows else "No segments.")
    return EXIT_OK


def segments_export(ctx: Context) -> int:
    sys.stdout.write(files.dumps(files.segment_definition(find_segment(ctx, ctx.args.segment))))
    return EXIT_OK


def segments_apply(ctx: Context) -> int:
    """Create or update the segment of the file's `name`. A segment's type cannot change (the
    server refuses); its name is how it is found, so a rename is done in the admin or the API."""
    definition = files.segment_file(ctx.args.file)
    existing = segment_by_name(ctx, definition["name"])
    if existing is None:
        return applied(ctx, "created", ctx.call("POST", "/v1/segments", {"segment": definition}), "segment")
    before = files.segment_definition(existing)
    changes = {name: value for name, value in definition.items() if name != "name"}
    if all(before[name] == value for name, value in changes.items()):
        return applied(ctx, "unchanged", {"segment": existing}, "segment")
    answer = ctx.call("PUT", f"/v1/segments/{existing['id']}", {"segment": changes})
    same = files.segment_definition(answer["segment"]) == before
    return applied(ctx, "unchanged" if same else "updated", answer, "segment")


# --- sends --------------------------------------------------------------------------------------------

def send_email(ctx: Context) -> int:
    args = ctx.args
    if not args.message and not (args.subject and args.body):
        raise UsageError("give --message ID_OR_NAME, or --subject and --body")
    body: dict = {"to": args.to, "identifiers": {"id": args.id} if args.id else {"email": args.to}}
    if args.message:
        body["transactional_message_id"] = int(args.message) if args.message.isascii() and args.message.isdecimal() \
            else args.message
    for name in ("subject", "body"):
        if getattr(args, name):
            body[name] = getattr(args, name)
    if getattr(args, "from_"):
        body["from"] = args.from_
    data = parse_json_option(args.data, "--data")
    if data is not None:
        body["message_data"] = data
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    answer = ctx.call("POST", "/v1/send/email", body, headers=headers)
    if ctx.as_json:
        ctx.raw(answer)
    else:
        ctx.out(str(answer["delivery_id"]))
    return EXIT_OK


# --- the parser ---------------------------------------------------------------------------------------

def _common(suppress: bool) -> argparse.ArgumentParser:
    """--url, --key, --json and --timeout, accepted before or after the command. The copies on the
    commands default to SUPPRESS so that they do not undo a value given before the command."""
    default = argparse.SUPPRESS if suppress else None
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=default, help="the server (default: $ULAK_URL)")
    common.add_argument("--key", default=default, help="an App API key (default: $ULAK_APP_KEY)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="print the server's JSON answer as it is")
    common.add_argument("--timeout", type=float, default=default, help="seconds to wait for an answer (default 30)")
    return common


class Parser(argparse.ArgumentParser):
    def error(self, message):  # exit code 2, as argparse, with the command's usage line
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    common = _common(suppress=True)
    parser = Parser(prog="ulak", parents=[_common(suppress=False)],
                    description="Ulak from the command line, through the App API (docs/cli.md).",
                    epilog="Exit codes: 0 done, 1 refused by the server, 2 usage error, 3 server unreachable or "
                           "failing.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=Parser, required=True)

    def command(subparsers, name, handler, help_text, **kwargs):
        sub = subparsers.add_parser(name, parents=[common], help=help_text, description=help_text, **kwargs)
        sub.set_defaults(handler=handler)
        return sub

    campaigns = groups.add_parser("campaigns", help="campaigns and their workflows (journeys as code)")
    verbs = campaigns.add_subparsers(dest="verb", metavar="ACTION", parser_class=Parser, required=True)
    command(verbs, "list", campaigns_list, "list the workspace's campaigns")
    ref = {"help": "the campaign's id or key"}
    command(verbs, "get", campaigns_get, "show a campaign").add_argument("campaign", **ref)
    command(verbs, "export", campaigns_export,
            "print a campaign's definition in the file format (ulak campaigns export ID > file.json)"
            ).add_argument("campaign", **ref)
    apply = command(verbs, "apply", campaigns_apply,
                    "create or update the campaign of the file's key; prints created, updated or unchanged")
    apply.add_argument("file", help="a campaign definition file (JSON; - for standard input)")
    apply.add_argument("--runs", choices=("stay", "move", "exit"),
                       help="updating a campaign that has been live: what happens to the runs already in it (stay on "
                            "their version, move to the new one, exit); required when runs are live and the "
                            "workflow changed")
    apply.add_argument("--map", action="append", metavar="OLD=NEW",
                       help="with --runs move: the step of the new workflow for the runs at a removed step (OLD= : "
                            "they exit); repeat for each removed step where runs are")
    apply.add_argument("--preview", action="store_true",
                       help="print the live runs per step and what the new version does with each; change nothing")
    for action, text in (("activate", "check the whole workflow and start admitting people"),
                         ("pause", "admit nobody; runs hold where they are"),
                         ("resume", "continue a paused campaign")):
        command(verbs, action, campaigns_state(action), text).add_argument("campaign", **ref)
    stop = command(verbs, "stop", campaigns_state("stop"), "stop a running campaign")
    stop.add_argument("campaign", **ref)
    stop.add_argument("--mode", required=True, choices=("exit", "drain"),
                      help="exit: every run ends now; drain: runs finish, nobody new enters")

    broadcasts = groups.add_parser("broadcasts", help="send a broadcast campaign through its API trigger")
    verbs = broadcasts.add_subparsers(dest="verb", metavar="ACTION", parser_class=Parser, required=True)
    trigger = command(verbs, "trigger", broadcasts_trigger, "trigger a broadcast; prints the trigger id")
    trigger.add_argument("campaign", help="the broadcast campaign's id or key")
    trigger.add_argument("--data", help="JSON object: trigger.* in the messages")
    audience = trigger.add_mutually_exclusive_group()
    audience.add_argument("--ids-file", help="people's ids, one a line (default: the campaign's audience)")
    audience.add_argument("--emails-file", help="people's email addresses, one a line")
    trigger.add_argument("--idempotency-key", help="a retry with the same key returns the same trigger")
    status = command(verbs, "status", broadcasts_status,
                     "a trigger's state, recipient and error counts, and the identifiers it could not reach")
    status.add_argument("campaign", help="the broadcast campaign's id or key")
    status.add_argument("trigger", type=int, help="the trigger id (what trigger printed)")

    segments = groups.add_parser("segments", help="segments (definitions as code)")
    verbs = segments.add_subparsers(dest="verb", metavar="ACTION", parser_class=Parser, required=True)
    command(verbs, "list", segments_list, "list the workspace's segments")
    command(verbs, "export", segments_export, "print a segment's definition in the file format"
            ).add_argument("segment", help="the segment's id or name")
    command(verbs, "apply", segments_apply,
            "create or update the segment of the file's name; prints created, updated or unchanged"
            ).add_argument("file", help="a segment definition file (JSON; - for standard input)")

    send = groups.add_parser("send", help="transactional sends")
    verbs = send.add_subparsers(dest="verb", metavar="CHANNEL", parser_class=Parser, required=True)
    email = command(verbs, "email", send_email, "send one email; prints the delivery id")
    email.add_argument("--to", required=True, help="the recipient's address")
    email.add_argument("--id", help="the person's id (default: the person is found or created by --to)")
    email.add_argument("--message", help="a transactional message's id or name")
    email.add_argument("--subject", help="the subject (inline content, or overriding the message's)")
    email.add_argument("--body", help="the HTML body (inline content, or overriding the message's)")
    email.add_argument("--from", dest="from_", help="the sender, e.g. 'Acme <hello@acme.test>'")
    email.add_argument("--data", help="JSON object: trigger.* in the message")
    email.add_argument("--idempotency-key", help="a retry with the same key sends nothing more")
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ulak")
    except Exception:  # run from a checkout that was never installed
        return "unknown"


def report(error: CliError, as_json: bool) -> None:
    if as_json and (error.body is not None or isinstance(error, Refused)):
        # The API's error shape, also for what was refused before asking (a key no campaign has).
        body = error.body if error.body is not None else {"meta": {"error": error.message}, "errors": error.errors}
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return
    if isinstance(error, Refused):
        status = f" (HTTP {error.status})" if error.status else ""
        sys.stderr.write(f"ulak: refused{status}:\n")
        for item in error.errors:
            field = item.get("field") if isinstance(item, dict) else None
            message = item.get("message") if isinstance(item, dict) else str(item)
            sys.stderr.write(f"{field}: {message}\n" if field else f"{message}\n")
    else:
        sys.stderr.write(f"ulak: {error.message}\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ctx = Context(args)
    try:
        return args.handler(ctx)
    except CliError as error:
        report(error, ctx.as_json)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ulak ... | head`
        sys.stderr.close()
        return EXIT_OK
