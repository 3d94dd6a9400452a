"""Background alerts: the listener that queues them, the job that runs them, ``techmatch worker``.

Each committed "created" event of the matcher service queues
``alert_job(side, record_id)``.  With ``REDIS_URL`` configured the job goes to
an RQ queue (``ALERT_QUEUE``, default ``techmatch-alerts``) and a worker
started with ``techmatch worker`` runs it; without Redis it runs at once in the
process that wrote the record, so the embedded default needs no worker.
"""

from __future__ import annotations

import logging
import threading

import click
from flask import Flask, current_app, has_app_context
from flask.cli import with_appcontext

from matcher.alerts import MailSettings, process_new_record
from matcher.models import Side
from matcher.worker import DEFAULT_QUEUE, JobQueue, make_queue, run_worker

log = logging.getLogger(__name__)

ALERT_JOB = "web.worker_cli.alert_job"
_app: Flask | None = None
_app_lock = threading.Lock()


def mail_settings(config) -> MailSettings | None:
    """``MAIL_*`` configuration as mail settings; None when no ``MAIL_SERVER`` is set."""
    server = config.get("MAIL_SERVER")
    if not server:
        return None
    return MailSettings(
        server=server, port=int(config.get("MAIL_PORT") or 25),
        username=config.get("MAIL_USERNAME") or None, password=config.get("MAIL_PASSWORD") or None,
        use_tls=bool(config.get("MAIL_USE_TLS")), use_ssl=bool(config.get("MAIL_USE_SSL")),
        sender=config.get("MAIL_DEFAULT_SENDER") or "techmatch@localhost",
        base_url=config.get("BASE_URL") or "")


def init_app(app: Flask) -> None:
    """Register the alert listener on the app's matcher service."""
    service = app.extensions["techmatch.matcher"]
    queue = make_queue(app.config.get("REDIS_URL"), app.config.get("ALERT_QUEUE") or DEFAULT_QUEUE)
    app.extensions["techmatch.queue"] = queue
    service.listeners.append(alert_listener(service, queue, mail_settings(app.config)))


def alert_listener(service, queue: JobQueue | None, mail: MailSettings | None):
    """A service listener: alerts for every new record, queued or (without a queue) at once."""

    def listener(event: str, side: Side, record_id: int) -> None:
        if event != "created":
            return
        if queue is not None:
            try:
                queue.enqueue(ALERT_JOB, side.value, record_id)
                return
            except Exception:  # Redis unreachable: better late in this request than never
                log.exception("could not queue alerts for %s %s; running them here", side.value, record_id)
        process_new_record(service, side, record_id, mail=mail)

    return listener


def _worker_app() -> Flask:
    """The app a worker process runs jobs in: built once per process from the environment."""
    global _app
    with _app_lock:
        if _app is None:
            from web import create_app

            _app = create_app()
        return _app


def alert_job(side: str, record_id: int) -> int:
    """The queued job: alerts for one new record.  Returns how many notifications it made."""
    if has_app_context():  # ``techmatch worker`` runs inside the app it was started with
        app = current_app._get_current_object()
        return _run(app, side, record_id)
    app = _worker_app()
    with app.app_context():
        return _run(app, side, record_id)


def _run(app: Flask, side: str, record_id: int) -> int:
    made = process_new_record(app.extensions["techmatch.matcher"], Side(side), record_id,
                              mail=mail_settings(app.config))
    return len(made)


@click.command("worker")
@click.option("--queue", "queues", multiple=True, help="queue name (repeatable); default ALERT_QUEUE")
@click.option("--burst", is_flag=True, help="stop when the queues are empty")
@with_appcontext
def worker(queues, burst):
    """Run the background worker for alert jobs (needs REDIS_URL)."""
    app = current_app._get_current_object()
    url = app.config.get("REDIS_URL")
    if not url:
        raise click.UsageError("REDIS_URL 未配置: 无需 worker, 提醒在写入时直接处理 / "
                               "REDIS_URL is not set: alerts run in-process, no worker is needed")
    names = list(queues) or [app.config.get("ALERT_QUEUE") or DEFAULT_QUEUE]
    click.echo(f"techmatch worker: {', '.join(names)}")
    # Jobs run in this process, inside this app context: the model and indexes load once.
    run_worker(url, names, burst=burst, simple=True)
