"""The outbox: work that follows a write, recorded in the write's own transaction.

A write adds a :class:`~matcher.models.Job` row beside the record it changes, in
the same transaction; nothing that has to follow the write (the stored match
lists, alerts) can be lost by a crash or an unreachable Redis.  After the commit
the job is *delivered*: put on the RQ queue when one is configured (the worker
runs it), otherwise run at once in the writing process.  A job whose delivery
failed stays ``pending``; the worker's sweep (:meth:`Outbox.sweep`) and
``techmatch matches verify`` deliver pending jobs again.  Every handler is
idempotent, so a job run twice (a retry, a sweep racing a slow worker) does no
harm.

Handlers are registered by name in :data:`HANDLERS` (``handler(context, payload)``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from matcher.models import Job, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RUN_JOB = "web.worker_cli.run_job"  # what the queue runs: run_job(job_id)

Handler = Callable[[Any, dict[str, Any]], Any]
HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register a job handler under ``kind``."""

    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return register


def add(session: Session, kind: str, payload: dict[str, Any]) -> Job:
    """Record a job in the caller's transaction (flushed, so it has an id)."""
    if kind not in HANDLERS:
        raise ValueError(f"unknown job kind {kind!r}")
    job = Job(kind=kind, payload=payload)
    session.add(job)
    session.flush()
    return job


@dataclass
class Outbox:
    """Delivers recorded jobs: to a queue, or in-process.

    Args:
        engine: the database holding the jobs.
        context: what handlers receive (the matcher service, mail settings, ...).
        queue: a :class:`matcher.worker.JobQueue`; None runs jobs in-process.
    """

    engine: Engine
    context: Any = None
    queue: Any = None
    ran: list[int] = field(default_factory=list)  # jobs run in this process (tests look at it)

    def deliver(self, job_ids: Iterable[int]) -> None:
        """Hand committed jobs over: enqueue them, or run them now."""
        for job_id in job_ids:
            if self.queue is not None:
                try:
                    self.queue.enqueue(RUN_JOB, job_id)
                    continue
                except Exception:  # Redis unreachable: the job stays pending for the sweep
                    log.warning("could not queue job %s; it stays pending until the next sweep", job_id,
                                exc_info=True)
                    continue
            self.run(job_id)

    def run(self, job_id: int) -> bool:
        """Run one job unless it is done already; returns whether it is done now.

        A failing job is counted and kept pending (failed after ``MAX_ATTEMPTS``).
        """
        with Session(self.engine) as session:
            job = session.get(Job, job_id)
            if job is None or job.state == "done":
                return True
            kind, payload = job.kind, dict(job.payload or {})
        try:
            HANDLERS[kind](self.context, payload)
        except Exception as exc:
            log.exception("job %s (%s) failed", job_id, kind)
            self._finish(job_id, ok=False, error=f"{type(exc).__name__}: {exc}")
            return False
        self._finish(job_id, ok=True)
        self.ran.append(job_id)
        return True

    def _finish(self, job_id: int, *, ok: bool, error: str = "") -> None:
        with Session(self.engine) as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None:
                return
            job.attempts += 1
            if ok:
                job.state, job.done_at, job.error = "done", utcnow(), ""
            else:
                job.error = error[:2000]
                if job.attempts >= MAX_ATTEMPTS:
                    job.state = "failed"
            session.add(job)
            session.commit()

    def pending(self, *, older_than: timedelta = timedelta(0), limit: int = 1000) -> list[int]:
        """Jobs not done yet (oldest first), created at least ``older_than`` ago."""
        cutoff = utcnow() - older_than
        with Session(self.engine) as session:
            return list(session.exec(select(Job.id).where(Job.state == "pending", Job.created_at <= cutoff)
                                     .order_by(Job.created_at, Job.id).limit(limit)).all())

    def sweep(self, *, older_than: timedelta = timedelta(seconds=30), run_here: bool = False) -> int:
        """Deliver pending jobs again (``run_here``: run them in this process); returns how many."""
        ids = self.pending(older_than=older_than)
        if run_here:
            for job_id in ids:
                self.run(job_id)
        else:
            self.deliver(ids)
        return len(ids)
