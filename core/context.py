"""Who is acting, and for which workspace.

Both live in ContextVars so they follow a request or a task and never leak into the next one:
every setter here is a context manager (or returns a token) that restores the previous value.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from django.db.models import Model

# The workspace, user and API key models live in accounts, above core; here they are just models.
Workspace = ApiKey = User = Model


class NoWorkspaceInScope(RuntimeError):
    """A workspace-scoped query ran with no workspace in scope (fail closed)."""


_workspace: ContextVar[Workspace | None] = ContextVar("ulak_workspace", default=None)
_actor: ContextVar[Actor | None] = ContextVar("ulak_actor", default=None)


def current_workspace() -> Workspace:
    workspace = _workspace.get()
    if workspace is None:
        raise NoWorkspaceInScope(
            "No workspace is in scope. Enter one with core.context.workspace_scope(), "
            "or use the model's `unscoped` manager for deliberate cross-workspace code."
        )
    return workspace


def current_workspace_or_none() -> Workspace | None:
    return _workspace.get()


def enter_workspace(workspace: Workspace | None) -> Token:
    return _workspace.set(workspace)


def exit_workspace(token: Token) -> None:
    _workspace.reset(token)


@contextmanager
def workspace_scope(workspace: Workspace):
    token = enter_workspace(workspace)
    try:
        yield workspace
    finally:
        exit_workspace(token)


SOURCES = ("admin", "api", "cli", "system")


@dataclass(frozen=True)
class Actor:
    """The origin of a change, recorded on every audit entry."""

    source: str
    user: User | None = None
    api_key: ApiKey | None = None
    remote_addr: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown actor source {self.source!r}")


def current_actor() -> Actor | None:
    return _actor.get()


def enter_actor(actor: Actor | None) -> Token:
    return _actor.set(actor)


def exit_actor(token: Token) -> None:
    _actor.reset(token)


@contextmanager
def acting_as(actor: Actor):
    token = enter_actor(actor)
    try:
        yield actor
    finally:
        exit_actor(token)


def request_ip(request: Any) -> str | None:
    return request.META.get("REMOTE_ADDR") or None
