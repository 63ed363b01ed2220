"""Connecting to a source and reading it: through the SSRF policy, read-only, time-limited, streamed.

    open_source(source, *, seconds) -> context manager yielding a prepared SQLAlchemy Connection
    stream(conn, sql, params, chunk) -> (columns, iterator of row tuples), fetched `chunk` at a time
    wrapped_query(source, conn, *, cursor, limit) -> (sql, params): the user's query as a subquery

Every connection:
- goes to an address the SSRF policy allows (core/netpolicy.py): the host is resolved once, every
  address checked, and the connection made to the checked address (PostgreSQL: libpq's `hostaddr`
  with `host` kept for TLS; MySQL: the address itself), so DNS cannot point it elsewhere after the
  check;
- runs one read-only transaction (PostgreSQL `SET TRANSACTION READ ONLY`, MySQL/MariaDB
  `SET SESSION TRANSACTION READ ONLY`), with the statement limited to the run's remaining seconds
  (PostgreSQL `statement_timeout`, MariaDB `max_statement_time`, MySQL `max_execution_time`);
- streams results with a server-side cursor (psycopg named cursor, PyMySQL's unbuffered cursor):
  rows are never all in memory;
- refuses multi-statement text (PyMySQL's MULTI_STATEMENTS flag is off; psycopg sends one statement).
"""

from __future__ import annotations

import contextlib
import re

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from core.netpolicy import BlockedHost, UnresolvableHost, resolve_allowed
from profiles.sources.models import SourceKind

CONNECT_TIMEOUT_SECONDS = 10
SUBQUERY = "ulak_source"
_DRIVERS = {SourceKind.POSTGRESQL: "postgresql+psycopg", SourceKind.MYSQL: "mysql+pymysql"}
# Error codes of a statement stopped by its time limit.
_PG_CANCELED = "57014"  # query_canceled (statement_timeout)
_MYSQL_TIMEOUTS = (1969, 3024)  # MariaDB max_statement_time; MySQL max_execution_time


class SourceError(Exception):
    """The source could not be read. `stage`: "address" (the SSRF policy or DNS), "connect",
    "query" or "timeout"; `field` is the setting the problem is about (host, query...)."""

    def __init__(self, stage: str, message: str, *, field: str):
        super().__init__(message)
        self.stage, self.message, self.field = stage, message, field


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    message = " ".join(str(original).split()) or type(original).__name__
    return message[:500]


def _codes(exc: DBAPIError) -> set:
    """The error's SQLSTATE (psycopg) and MySQL error number (PyMySQL), whichever it has."""
    original = exc.orig
    args = getattr(original, "args", ())
    return {getattr(original, "sqlstate", None), args[0] if args and isinstance(args[0], int) else None}


def classify(exc: BaseException, seconds: float) -> SourceError:
    """A database error → SourceError; the message is the server's, never the password."""
    if isinstance(exc, DBAPIError) and _codes(exc) & {_PG_CANCELED, *_MYSQL_TIMEOUTS}:
        return SourceError("timeout", f"the query ran longer than {seconds:g} seconds", field="max_seconds")
    return SourceError("query", _first_line(exc), field="query")


def _engine(source, password: str, address: str, seconds: float):
    kind = SourceKind(source.kind)
    if kind == SourceKind.POSTGRESQL:
        url = URL.create(_DRIVERS[kind], username=source.username, password=password or None, host=source.host,
                         port=source.port, database=source.database)
        connect_args = {"hostaddr": address, "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                        "sslmode": "require" if source.require_tls else "prefer",
                        "application_name": "ulak-reverse-etl"}
    else:
        url = URL.create(_DRIVERS[kind], username=source.username, password=password or None, host=address,
                         port=source.port, database=source.database, query={"charset": "utf8mb4"})
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "read_timeout": int(seconds) + 30,
                        "write_timeout": CONNECT_TIMEOUT_SECONDS}
        if source.require_tls:
            # Encrypted, as PostgreSQL's sslmode=require: the certificate is not verified (the
            # connection goes to the checked address, not the name a certificate carries).
            connect_args["ssl"] = {"check_hostname": False, "verify_mode": 0}
    return create_engine(url, poolclass=NullPool, connect_args=connect_args)


def _prepare(conn, kind: str, seconds: float) -> None:
    """Make the connection's transaction read-only and its statements time-limited."""
    millis = max(int(seconds * 1000), 1)
    if kind == SourceKind.POSTGRESQL:
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {millis}")
        return
    conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
    if conn.dialect.is_mariadb:
        conn.exec_driver_sql(f"SET SESSION max_statement_time = {millis / 1000:.3f}")
    else:
        conn.exec_driver_sql(f"SET SESSION max_execution_time = {millis}")
    conn.commit()  # the next statement starts a transaction with the session's read-only setting


@contextlib.contextmanager
def open_source(source, password: str, *, seconds: float):
    """A connection to `source`, read-only and limited to `seconds` per statement; rolled back and
    closed on leaving. Raises SourceError (stage address or connect) when it cannot be had."""
    try:
        addresses = resolve_allowed(source.host, source.port)
    except BlockedHost as exc:
        raise SourceError("address", f"not allowed: {exc}", field="host") from exc
    except UnresolvableHost as exc:
        raise SourceError("address", str(exc), field="host") from exc
    engine = _engine(source, password, addresses[0], seconds)
    try:
        try:
            conn = engine.connect()
        except SQLAlchemyError as exc:
            raise SourceError("connect", f"could not connect: {_first_line(exc)}", field="host") from exc
        try:
            try:
                _prepare(conn, source.kind, seconds)
            except SQLAlchemyError as exc:
                raise classify(exc, seconds) from exc
            yield conn
        finally:
            # Closed outright, not rolled back first: a result still streaming (a run stopped at a
            # limit) would otherwise be read to its end. Nothing was written: the transaction is
            # read-only, and the server ends it with the connection.
            with contextlib.suppress(Exception):
                conn.invalidate()
            with contextlib.suppress(Exception):
                conn.close()
    finally:
        engine.dispose()


def clean_query_text(query: str) -> str:
    """The query without trailing semicolons and whitespace."""
    return re.sub(r"[\s;]+$", "", query.strip())


def wrapped_query(source, conn, *, cursor_column: str = "", after=None, limit: int) -> tuple:
    """`SELECT * FROM (<query>) AS ulak_source [WHERE cursor > :after ORDER BY cursor] LIMIT n`.

    The user's text is escaped for SQLAlchemy's `text()` (a `:name` in it is not a parameter) and
    the cursor column quoted by the dialect, so neither is read as anything but a name."""
    inner = clean_query_text(source.query).replace(":", "\\:")
    sql = f"SELECT * FROM ({inner}) AS {SUBQUERY}"
    params: dict = {"ulak_limit": int(limit)}
    if cursor_column:
        column = f"{SUBQUERY}.{conn.dialect.identifier_preparer.quote(cursor_column)}"
        if after is not None:
            sql += f" WHERE {column} > :ulak_after"
            params["ulak_after"] = after
        sql += f" ORDER BY {column}"
    sql += " LIMIT :ulak_limit"
    return text(sql), params


def stream(conn, statement, params: dict, *, chunk: int):
    """(column names, an iterator of lists of row tuples, at most `chunk` per list), read through a
    server-side cursor."""
    result = conn.execution_options(stream_results=True, max_row_buffer=chunk).execute(statement, params)
    columns = list(result.keys())

    def chunks():
        try:
            for partition in result.partitions(chunk):
                yield [tuple(row) for row in partition]
        finally:
            result.close()

    return columns, chunks()


def server_version(conn) -> str:
    info = conn.dialect.server_version_info or ()
    return ".".join(str(part) for part in info)
