"""A real Celery worker whose process dies (SIGKILL) once at a chosen point of an SMTP hand-off.

    python -m tests.channels.crashing_worker <point> <marker file> <celery worker args...>

point: `render` dies as python-liquid renders the message (after the claim, before the provider
call); `data` dies right after the SMTP server answered the message's data with 250 (it accepted
the message), before the result is recorded. The hooks wrap libraries (python-liquid, the standard
library's smtplib), never Ulak's code, and fire only while the marker file exists, so the
redelivered task runs normally.
"""

import itertools
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


def _die_once_after(original, marker, accepted):
    """Run `original`, then die if its result passes `accepted` (and the marker exists)."""
    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        if accepted(result) and os.path.exists(marker):
            os.unlink(marker)
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapper


def _poisoned(original, text):
    def wrapper(*args, **kwargs):
        output = original(*args, **kwargs)
        if text in output:
            os.kill(os.getpid(), signal.SIGKILL)
        return output
    return wrapper


def main():
    point, marker, *celery_args = sys.argv[1:]
    if point == "render":
        import liquid

        liquid.BoundTemplate.render = _die_once(liquid.BoundTemplate.render, marker)
    elif point == "data":
        smtplib.SMTP.data = _die_once_after(smtplib.SMTP.data, marker, lambda reply: reply[0] == 250)
    elif point.startswith("poison:"):
        # `poison:<text>` dies every time a rendered template contains <text> (no marker): a
        # delivery that kills whichever worker takes it.
        import liquid

        liquid.BoundTemplate.render = _poisoned(liquid.BoundTemplate.render, point.removeprefix("poison:"))
    elif point.startswith("data:"):
        # `data:<k>` dies right after the server accepted the k-th message this worker process
        # handed it (in the middle of a batch), before its result is recorded.
        k, accepted = int(point.removeprefix("data:")), itertools.count(1)
        smtplib.SMTP.data = _die_once_after(smtplib.SMTP.data, marker,
                                            lambda reply: reply[0] == 250 and next(accepted) == k)
    else:
        raise SystemExit(f"unknown point {point!r}")
    from celery.__main__ import main as celery_main

    sys.argv = ["celery", *celery_args]
    celery_main()


if __name__ == "__main__":
    main()
