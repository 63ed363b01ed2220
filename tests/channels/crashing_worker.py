"""A real Celery worker whose process dies (SIGKILL) once at a chosen point of an SMTP hand-off.

    python -m tests.channels.crashing_worker <point> <marker file> <celery worker args...>

point: `render` dies as python-liquid renders the message (after the claim, before the provider
call); `quit` dies after the SMTP server accepted the message, before the result is recorded. The
hooks wrap libraries (python-liquid, the standard library's smtplib), never Ulak's code, and fire
only while the marker file exists, so the redelivered task runs normally.
"""

import os
import signal
import smtplib
import sys


def _die_once(original, marker):
    def wrapper(*args, **kwargs):
        if os.path.exists(marker):
            os.unlink(marker)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)
    return wrapper


def main():
    point, marker, *celery_args = sys.argv[1:]
    if point == "render":
        import liquid

        liquid.BoundTemplate.render = _die_once(liquid.BoundTemplate.render, marker)
    elif point == "quit":
        smtplib.SMTP.quit = _die_once(smtplib.SMTP.quit, marker)
    else:
        raise SystemExit(f"unknown point {point!r}")
    from celery.__main__ import main as celery_main

    sys.argv = ["celery", *celery_args]
    celery_main()


if __name__ == "__main__":
    main()
