"""Gunicorn settings for production; every value can be overridden from the environment."""

import multiprocessing
import os

bind = os.environ.get("ULAK_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("WEB_THREADS", "1"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
max_requests = 10000
max_requests_jitter = 1000
accesslog = "-" if os.environ.get("WEB_ACCESS_LOG") else None
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's control socket lives at one fixed path per user; several servers on one machine
# (a dev run beside the test suite) would share it, and Ulak does not use it.
control_socket_disable = True
