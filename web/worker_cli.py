"""Background work: the outbox's queue, the job the RQ worker runs, ``techmatch worker``.

Every write records its follow-up job in the outbox (:mod:`matcher.jobs`) in the
write's own transaction.  With ``REDIS_URL`` configured the job's id goes to an
RQ queue (``JOB_QUEUE``, default ``techmatch-jobs``) and ``techmatch worker``
runs it; without Redis it runs at once in the process that wrote the record.
A job that could not be queued (Redis down) stays pending in the database: the
worker sweeps pending jobs when it starts and every ``SWEEP_SECONDS`` while it
runs, so nothing is lost.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import click
from flask import Flask, current_app, has_app_context
from flask.cli import with_appcontext

from matcher.alerts import MailSettings
from matcher.worker import DEFAULT_QUEUE, make_queue, run_worker

log = logging.getLogger(__name__)

SWEEP_SECONDS = 30
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


def queue_name(config) -> str:
    return config.get("JOB_QUEUE") or config.get("ALERT_QUEUE") or DEFAULT_QUEUE


def init_app(app: Flask) -> None:
    """Give the matcher service's outbox its queue (or none: in-process) and mail settings."""
    service = app.extensions["techmatch.matcher"]
    queue = make_queue(app.config.get("REDIS_URL"), queue_name(app.config))
    app.extensions["techmatch.queue"] = queue
    service.outbox.queue = queue
    service.mail = mail_settings(app.config)


def _worker_app() -> Flask:
    """The app a worker process runs jobs in: built once per process from the environment."""
    global _app
    with _app_lock:
        if _app is None:
            from web import create_app

            _app = create_app()
        return _app


def run_job(job_id: int) -> bool:
    """The queued job: run one outbox job (idempotent).  Returns whether it is done."""
    if has_app_context():  # ``techmatch worker`` runs inside the app it was started with
        app = current_app._get_current_object()
        return _run(app, job_id)
    app = _worker_app()
    with app.app_context():
        return _run(app, job_id)


def _run(app: Flask, job_id: int) -> bool:
    outbox = app.extensions["techmatch.matcher"].outbox
    if not outbox.run(job_id):
        raise RuntimeError(f"job {job_id} failed; RQ retries it")
    return True


def _sweeper(app: Flask, stop: threading.Event) -> None:
    """Every ``SWEEP_SECONDS``: queue the jobs whose delivery failed (Redis was down, a crash)."""
    while not stop.wait(SWEEP_SECONDS):
        with app.app_context():
            try:
                app.extensions["techmatch.matcher"].outbox.sweep(older_than=timedelta(seconds=SWEEP_SECONDS))
            except Exception:  # Redis or the database away: try again next round
                log.warning("outbox sweep failed", exc_info=True)


@click.command("worker")
@click.option("--queue", "queues", multiple=True, help="queue name (repeatable); default JOB_QUEUE")
@click.option("--burst", is_flag=True, help="stop when the queues are empty")
@with_appcontext
def worker(queues, burst):
    """Run the background worker for the jobs that follow writes (needs REDIS_URL)."""
    app = current_app._get_current_object()
    url = app.config.get("REDIS_URL")
    if not url:
        raise click.UsageError("REDIS_URL 未配置: 无需 worker, 写入后的任务在进程内直接处理 / "
                               "REDIS_URL is not set: jobs run in-process, no worker is needed")
    names = list(queues) or [queue_name(app.config)]
    outbox = app.extensions["techmatch.matcher"].outbox
    swept = outbox.sweep(older_than=timedelta(0))  # what was written while no worker (or Redis) ran
    click.echo(f"techmatch worker: {', '.join(names)} ({swept} pending jobs queued)")
    stop = threading.Event()
    if not burst:
        threading.Thread(target=_sweeper, args=(app, stop), daemon=True, name="outbox-sweep").start()
    try:
        # Jobs run in this process, inside this app context: the model and indexes load once.
        return run_worker(url, names, burst=burst, simple=True)
    finally:
        stop.set()
