"""Celery tasks of the channels app: thin wrappers around channels.sending.

One send task per channel so each channel has its own queue (email, sms, whatsapp, push,
in_app, webhooks) and can be scaled or paused on its own.
"""

from celery import shared_task
from accounts.tasks import WorkspaceTask
from core.tasks import UlakTask


def _send(task, delivery_id):
    from channels.sending import deliver

    outcome = deliver(delivery_id, token=task.request.id)
    if outcome.result == "retry":
        # The delivery is back in `queued` with its send_at; should this retry message be lost,
        # the sweep enqueues it again when due.
        raise task.retry(countdown=outcome.retry_in, max_retries=None)
    return {"result": outcome.result, "detail": outcome.detail}


@shared_task(bind=True, base=WorkspaceTask, name="email.send_delivery")
def send_email(self, *, workspace_id, delivery_id):
    return _send(self, delivery_id)


@shared_task(bind=True, base=WorkspaceTask, name="sms.send_delivery")
def send_sms(self, *, workspace_id, delivery_id):
    return _send(self, delivery_id)


@shared_task(bind=True, base=WorkspaceTask, name="whatsapp.send_delivery")
def send_whatsapp(self, *, workspace_id, delivery_id):
    return _send(self, delivery_id)


@shared_task(bind=True, base=WorkspaceTask, name="push.send_delivery")
def send_push(self, *, workspace_id, delivery_id):
    return _send(self, delivery_id)


@shared_task(bind=True, base=WorkspaceTask, name="in_app.send_delivery")
def send_in_app(self, *, workspace_id, delivery_id):
    return _send(self, delivery_id)


@shared_task(bind=True, base=WorkspaceTask, name="webhooks.send_delivery")
def send_webhook(self, *, workspace_id, delivery_id):
    return _send(self, delivery_id)


def _batch(task, config_id, slot):
    from channels.batching import run_batches

    return run_batches(task.workspace, config_id, token=task.request.id, slot=slot)


# Campaign and broadcast deliveries: one task per channel configuration sends them in batches
# (channels/batching.py), on the channel's queue.
@shared_task(bind=True, base=WorkspaceTask, name="email.send_batch")
def send_email_batch(self, *, workspace_id, config_id, slot=0):
    return _batch(self, config_id, slot)


@shared_task(bind=True, base=WorkspaceTask, name="sms.send_batch")
def send_sms_batch(self, *, workspace_id, config_id, slot=0):
    return _batch(self, config_id, slot)


@shared_task(bind=True, base=WorkspaceTask, name="whatsapp.send_batch")
def send_whatsapp_batch(self, *, workspace_id, config_id, slot=0):
    return _batch(self, config_id, slot)


@shared_task(bind=True, base=WorkspaceTask, name="push.send_batch")
def send_push_batch(self, *, workspace_id, config_id, slot=0):
    return _batch(self, config_id, slot)


@shared_task(bind=True, base=WorkspaceTask, name="in_app.send_batch")
def send_in_app_batch(self, *, workspace_id, config_id, slot=0):
    return _batch(self, config_id, slot)


@shared_task(bind=True, base=WorkspaceTask, name="webhooks.send_batch")
def send_webhook_batch(self, *, workspace_id, config_id, slot=0):
    return _batch(self, config_id, slot)


@shared_task(base=UlakTask, name="default.sweep_deliveries")
def sweep_deliveries():
    """Beat (every 30 s): enqueue scheduled sends that came due and deliveries whose task was lost:
    one send task per delivery, one batch task per channel configuration with due or orphaned
    campaign and broadcast deliveries. Returns how many tasks were published."""
    from channels.batching import due_batches, schedule_batch
    from channels.deliveries import enqueue_send
    from channels.sending import due_deliveries

    count = 0
    for delivery in due_deliveries():
        enqueue_send(delivery)
        count += 1
    for workspace_id, config_id, channel in due_batches():
        count += schedule_batch(workspace_id, config_id, channel)
    return {"enqueued": count}


@shared_task(base=UlakTask, name="webhooks.send_due_reporting_calls")
def send_due_reporting_calls():
    """Beat (every 15 s): post due reporting webhook calls, retrying failures with backoff."""
    from channels.reporting_sender import send_due_calls

    return send_due_calls()
