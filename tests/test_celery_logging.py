"""Celery's own lines about the beat schedule's routine tasks (sent, received, succeeded) are DEBUG,
so a running Ulak's log is not buried under them; other tasks' lines and every warning or error keep
their level (config/celery.py)."""

import logging

from config.celery import ROUTINE_LOGGERS, RoutineTaskLogFilter, routine_task_names


def emit():
    logging.getLogger("celery.beat").info("Scheduler: Sending due task %s (%s)", "journeys-tick", "journeys.tick")
    logging.getLogger("celery.worker.strategy").info("Task %(name)s[%(id)s] received",
                                                     {"name": "default.sweep_deliveries", "id": "1"})
    logging.getLogger("celery.app.trace").info("Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s",
                                               {"name": "journeys.tick", "id": "2", "runtime": 0.1, "return_value": 0})
    logging.getLogger("celery.worker.strategy").info("Task %(name)s[%(id)s] received",
                                                     {"name": "email.send_delivery", "id": "3"})
    logging.getLogger("celery.app.trace").error("Task %(name)s[%(id)s] raised unexpected: %(exc)s",
                                                {"name": "journeys.tick", "id": "4", "exc": "boom"})


def test_the_routine_tasks_are_the_beat_schedules():
    assert {"journeys.tick", "ingest.sweep_inbound", "default.sweep_deliveries"} <= routine_task_names()
    assert "email.send_delivery" not in routine_task_names()
    for name in ROUTINE_LOGGERS:
        assert sum(isinstance(f, RoutineTaskLogFilter) for f in logging.getLogger(name).filters) == 1


def test_routine_lines_are_debug_and_the_rest_keep_their_level(caplog):
    caplog.set_level(logging.INFO, logger="celery")
    emit()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "Task email.send_delivery[3] received"), ("ERROR", "Task journeys.tick[4] raised unexpected: boom")]

    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="celery")
    emit()
    assert [(r.levelname, r.getMessage().split("[")[0]) for r in caplog.records] == [
        ("DEBUG", "Scheduler: Sending due task journeys-tick (journeys.tick)"),
        ("DEBUG", "Task default.sweep_deliveries"), ("DEBUG", "Task journeys.tick"),
        ("INFO", "Task email.send_delivery"), ("ERROR", "Task journeys.tick")]
