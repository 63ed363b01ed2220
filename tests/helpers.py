import base64


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def app_client_with_scopes(tenant, *scopes):
    """An App API client for a new key of `tenant` holding only `scopes`."""
    from accounts import services

    _, secret = services.create_api_key(workspace=tenant.workspace, kind="app", name="scoped", scopes=scopes)
    return tenant.app_client(secret)


def warm(client):
    """Authenticate once so the key is cached, as in steady state; returns the client."""
    client.get("/v1/workspace")
    return client


def wait_until(predicate, timeout=30, interval=0.05) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; returns whether it became true."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def stop_worker(worker) -> None:
    """End a worker started in a process group of its own (`start_new_session=True`): SIGTERM (a
    warm shutdown), then SIGKILL if it has not exited within 15 s."""
    import os
    import signal
    import subprocess

    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
