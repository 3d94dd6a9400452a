"""The job queue: RQ on Redis when a Redis URL is configured, otherwise none (work runs in-process).

Backends are chosen by name through ``QUEUES`` (``make_queue``).  Jobs are
named by import path (``"web.worker_cli.alert_job"``), so enqueuing never
imports the job's module and the worker resolves it when it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

DEFAULT_QUEUE = "techmatch-alerts"
JOB_TIMEOUT = 600  # seconds: a job ranks a few hundred records at most
RETRY_INTERVALS = [10, 60, 300]  # seconds between the attempts of a failing job


class JobQueue(Protocol):
    name: str

    def enqueue(self, func: str, *args: Any) -> str | None:
        """Queue ``func(*args)``; returns the job id."""
        ...


class RQQueue:
    """A named RQ queue on Redis."""

    def __init__(self, redis_url: str, name: str = DEFAULT_QUEUE):
        from redis import Redis
        from rq import Queue

        self.name = name
        self.connection = Redis.from_url(redis_url)
        self.queue = Queue(name, connection=self.connection)

    def enqueue(self, func: str, *args: Any) -> str | None:
        from rq import Retry

        job = self.queue.enqueue(func, *args, job_timeout=JOB_TIMEOUT,
                                 retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS))
        return job.id


QUEUES: dict[str, Callable[..., JobQueue]] = {"rq": RQQueue}


def make_queue(redis_url: str | None, name: str = DEFAULT_QUEUE) -> JobQueue | None:
    """The queue for this configuration; None means "run the work in-process, synchronously"."""
    if not redis_url:
        return None
    return QUEUES["rq"](redis_url, name)


def run_worker(redis_url: str, names: list[str], *, burst: bool = False, simple: bool = False) -> bool:
    """Work the named queues until stopped (or, with ``burst``, until they are empty).

    Args:
        redis_url: the Redis holding the queues.
        names: queue names, highest priority first.
        burst: stop when the queues are empty.
        simple: run jobs in this process (no fork per job; needed where fork is unsafe).
    """
    from redis import Redis
    from rq import Queue, SimpleWorker, Worker

    connection = Redis.from_url(redis_url)
    queues = [Queue(n, connection=connection) for n in names]
    cls = SimpleWorker if simple else Worker
    return cls(queues, connection=connection).work(burst=burst)
