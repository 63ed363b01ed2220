import pytest
from django.test import Client

from config.celery import app as celery_app


def test_healthz_answers_without_touching_services():
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_cache_and_broker():
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "broker": "ok"}}


@pytest.mark.django_db
def test_readyz_is_503_when_the_broker_is_unreachable(monkeypatch):
    # A closed local port stands in for a broker that is down.
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "unavailable"
    assert response.json()["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_unknown_api_paths_are_json_404():
    for path in ("/v1/nothing-here", "/api/v1/nope", "/cdp/v1/nope"):
        response = Client().get(path)
        assert response.status_code == 404
        assert response.json()["meta"]["error"] == "Not found."


@pytest.mark.django_db
def test_openapi_schema_and_offline_docs():
    client = Client()
    schema = client.get("/v1/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/v1/workspace" in paths and "/v1/api_keys/" in paths
    assert {"/v1/send/email/", "/v1/channels/", "/v1/transactional/", "/v1/deliveries/"} <= set(paths)
    assert schema.json()["components"]["securitySchemes"], "bearer auth must be documented"
    docs = client.get("/v1/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    assert b"cdn.jsdelivr" not in docs.content  # served by the sidecar, works offline


def test_production_settings_refuse_to_start_without_a_secret_key():
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "-c", "import config.wsgi"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
    # tooling that signs nothing still runs, e.g. the migration check
    check = subprocess.run([sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_json_log_lines_carry_the_workspace():
    import json
    import logging

    from core.context import workspace_scope
    from core.logging import JsonFormatter

    class Ws:
        pk = 42

    record = logging.makeLogRecord({"name": "ulak.test", "levelname": "INFO", "msg": "hello %s",
                                    "args": ("world",), "task_id": "t-1"})
    with workspace_scope(Ws()):
        line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello world" and line["workspace_id"] == 42 and line["task_id"] == "t-1"


@pytest.mark.django_db
def test_readyz_accepts_rabbitmq_as_the_broker(monkeypatch):
    monkeypatch.setattr(celery_app.conf, "broker_url", "amqp://guest:guest@127.0.0.1:5672//")
    response = Client().get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["broker"] == "ok"
