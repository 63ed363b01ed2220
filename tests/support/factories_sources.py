"""Reverse ETL test sources: a schema of its own in the real PostgreSQL (database `ulak_retl_source`)
and tables of their own in the real MariaDB (127.0.0.1:3306, root, no password, database `test`),
made per test and dropped after it; and data sources of a workspace pointing at them."""

from __future__ import annotations

import secrets

import psycopg
import pymysql
import pytest
from django.conf import settings

from profiles.sources import services

PG_SOURCE_DATABASE = "ulak_retl_source"
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "test"}
CLOSED_PORT = 9  # discard: nothing listens there on this machine


def _pg_settings() -> dict:
    db = settings.DATABASES["default"]
    return {"host": db["HOST"] or "127.0.0.1", "port": int(db["PORT"] or 5432), "user": db["USER"] or "postgres",
            "password": db["PASSWORD"] or ""}


class PgSource:
    """A schema in `ulak_retl_source`, its tables named `<schema>.<name>`."""

    kind = "postgresql"

    def __init__(self):
        conf = _pg_settings()
        with psycopg.connect(dbname="postgres", autocommit=True, **conf) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_SOURCE_DATABASE]).fetchone():
                try:
                    admin.execute(f'CREATE DATABASE "{PG_SOURCE_DATABASE}"')
                except psycopg.errors.DuplicateDatabase:
                    pass  # made by another test process meanwhile
        self.conn = psycopg.connect(dbname=PG_SOURCE_DATABASE, autocommit=True, **conf)
        self.schema = f"retl_{secrets.token_hex(4)}"
        self.conn.execute(f"CREATE SCHEMA {self.schema}")
        self.settings = {"kind": "postgresql", "host": conf["host"], "port": conf["port"],
                         "database": PG_SOURCE_DATABASE, "username": conf["user"], "password": conf["password"]}

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}"

    def execute(self, sql: str, params=None):
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows):
        with self.conn.cursor() as cursor:
            cursor.executemany(sql, rows)

    def close(self):
        self.conn.execute(f"DROP SCHEMA {self.schema} CASCADE")
        self.conn.close()


class MariaSource:
    """Tables `<prefix>_<name>` in MariaDB's `test` database (made if absent)."""

    kind = "mysql"

    def __init__(self):
        server = pymysql.connect(**{k: v for k, v in MARIADB.items() if k != "database"}, autocommit=True)
        with server.cursor() as cursor:
            cursor.execute("CREATE DATABASE IF NOT EXISTS test")
        server.close()
        self.conn = pymysql.connect(**MARIADB, autocommit=True)
        self.prefix = f"retl_{secrets.token_hex(4)}"
        self.tables: list[str] = []
        self.settings = {"kind": "mysql", "host": MARIADB["host"], "port": MARIADB["port"],
                         "database": MARIADB["database"], "username": MARIADB["user"], "password": MARIADB["password"]}

    def table(self, name: str) -> str:
        table = f"{self.prefix}_{name}"
        if table not in self.tables:
            self.tables.append(table)
        return table

    def execute(self, sql: str, params=None):
        with self.conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def executemany(self, sql: str, rows):
        with self.conn.cursor() as cursor:
            cursor.executemany(sql, rows)

    def close(self):
        with self.conn.cursor() as cursor:
            for table in self.tables:
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
        self.conn.close()


@pytest.fixture
def pg_source():
    source = PgSource()
    yield source
    source.close()


@pytest.fixture
def maria_source():
    source = MariaSource()
    yield source
    source.close()


@pytest.fixture(params=["postgresql", "mysql"])
def any_source(request):
    """The same test against PostgreSQL and MariaDB."""
    source = PgSource() if request.param == "postgresql" else MariaSource()
    yield source
    source.close()


def people_table(db, name: str = "people") -> str:
    """A table of people with an `updated_at` cursor, in either database."""
    table = db.table(name)
    timestamp = "timestamp" if db.kind == "postgresql" else "datetime(6)"
    db.execute(f"CREATE TABLE {table} (id varchar(64) PRIMARY KEY, email varchar(254), plan varchar(20), "
               f"seats integer, unsubscribed boolean, updated_at {timestamp} NOT NULL)")
    return table


def make_source(workspace, db, *, user=None, **overrides):
    """A data source of `workspace` reading `db` (a PgSource or MariaSource)."""
    data = {"name": f"warehouse {secrets.token_hex(3)}", **db.settings,
            "query": overrides.pop("query", "SELECT 1 AS id"), "identifier_column": "id", **overrides}
    return services.create_source(workspace=workspace, data=data, user=user)
