"""What the benchmark scripts share: the environment of the Ulak processes they start, and a fresh,
migrated database of their own."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"


def bench_env(database: str, **extra: str) -> dict:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": f"{PG}/{database}",
            "SECRET_KEY": "bench-only", "ALLOWED_HOSTS": "127.0.0.1", "ULAK_LOG_LEVEL": "WARNING",
            "ULAK_FERNET_KEYS": base64.urlsafe_b64encode(b"0" * 32).decode(), "ULAK_CACHE_PREFIX": "bench", **extra}


def manage(env: dict, *args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


def fresh_database(database: str, env: dict) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    manage(env, "migrate", "--noinput")
