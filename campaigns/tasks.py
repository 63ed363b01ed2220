"""Journey tasks (Celery, queue `journeys`). Beat runs `journeys.tick` every second; new runs and
woken waits ask for one at once (engine.advance_soon)."""

from celery import shared_task

from core.tasks import UlakTask


@shared_task(base=UlakTask, name="journeys.tick")
def tick():
    """Advance every due run (FOR UPDATE SKIP LOCKED: ticks running at once share the work)."""
    from campaigns.journeys.engine import tick as run_tick

    return run_tick()


@shared_task(base=UlakTask, name="journeys.date_triggers")
def date_triggers():
    """Start the runs of date-triggered campaigns whose moment has come (every minute)."""
    from campaigns.journeys.dates import run_date_triggers

    return run_date_triggers()


@shared_task(base=UlakTask, name="journeys.start_broadcasts")
def start_broadcasts():
    """Fix the recipients of broadcast triggers whose start has come (every 5 s, and on commit of a trigger)."""
    from campaigns.journeys.broadcasts import start_due

    return start_due()


@shared_task(base=UlakTask, name="journeys.evaluate_experiments")
def evaluate_experiments():
    """Look at every running automatic A/B test and keep a winner once one is found (every minute)."""
    from campaigns.journeys.experiments import evaluate_experiments as evaluate

    return evaluate()
