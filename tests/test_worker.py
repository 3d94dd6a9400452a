"""Alerts through the background worker: RQ on the real Redis (when configured), in-process, and SMTP."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from datetime import timedelta

import pytest
from sqlmodel import Session, select
from werkzeug.security import generate_password_hash

from matcher.models import Job, Notification, OrgKind, Role, Side, User
from tests.conftest import REDIS_URL, achievement_data, demand_data, make_org


def make_app(tmp_path, encoder, **config):
    from matcher.db import init_db
    from web import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "test", "RATELIMIT_ENABLED": False,
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'worker.sqlite3'}",
                      "CACHE_DIR": str(encoder.cache_dir), "INSTANCE_PATH": str(tmp_path / "web"), **config})
    init_db(app.extensions["techmatch.engine"])
    return app


def people(app) -> dict[str, int]:
    """An enterprise and an institution, one user each (with e-mail addresses)."""
    engine = app.extensions["techmatch.engine"]
    orgs = {"ent": make_org(engine, "铜材企业", OrgKind.enterprise),
            "inst": make_org(engine, "材料大学", OrgKind.university)}
    ids = {}
    with Session(engine) as s:
        for name, role in [("ent", Role.enterprise), ("inst", Role.institution)]:
            u = User(username=name, password_hash=generate_password_hash("x"), role=role.value,
                     organisation_id=orgs[name], email=f"{name}@example.com")
            s.add(u)
            s.flush()
            ids[name] = u.id
        s.commit()
    ids.update({f"{k}_org": v for k, v in orgs.items()})
    return ids


def alerts_of(app, user_id: int) -> list[Notification]:
    with Session(app.extensions["techmatch.engine"]) as s:
        return list(s.exec(select(Notification).where(Notification.user_id == user_id,
                                                      Notification.kind == "match")).all())


def write_pair(app, ids):
    svc = app.extensions["techmatch.matcher"]
    demand = svc.create_demand(data=demand_data(ids["ent_org"]))
    achievement = svc.create_achievement(data=achievement_data(ids["inst_org"]))
    return demand, achievement


def test_in_process_alerts_without_redis(tmp_path, encoder):
    app = make_app(tmp_path, encoder)
    assert app.extensions["techmatch.queue"] is None
    ids = people(app)
    demand, achievement = write_pair(app, ids)
    got = alerts_of(app, ids["ent"])
    assert [(n.link, n.read) for n in got] == [(f"/achievements/{achievement.id}", False)]
    assert alerts_of(app, ids["inst"]) == []  # the demand came first: no achievement to match then
    app.extensions["techmatch.engine"].dispose()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    aiosmtpd = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd is not installed")

    class Handler:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return "250 OK"

    handler = Handler()
    controller = aiosmtpd.Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def test_alert_mail_over_smtp(tmp_path, encoder, smtp_server):
    import email

    controller, handler = smtp_server
    port = controller.port
    app = make_app(tmp_path, encoder, MAIL_SERVER="127.0.0.1", MAIL_PORT=port,
                   MAIL_DEFAULT_SENDER="alerts@techmatch.test", BASE_URL="https://techmatch.test")
    ids = people(app)
    _, achievement = write_pair(app, ids)
    assert len(handler.messages) == 1
    envelope = handler.messages[0]
    assert envelope.mail_from == "alerts@techmatch.test" and envelope.rcpt_tos == ["ent@example.com"]
    msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert "新科技成果" in msg["Subject"] and "new achievement" in msg["Subject"]
    body = msg.get_content()
    assert f"https://techmatch.test/achievements/{achievement.id}" in body
    assert "Cu-Ni-Si" in body
    app.extensions["techmatch.engine"].dispose()


def test_unreachable_mail_server_keeps_the_notification(tmp_path, encoder):
    app = make_app(tmp_path, encoder, MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port())  # nobody listens
    ids = people(app)
    write_pair(app, ids)
    assert len(alerts_of(app, ids["ent"])) == 1
    app.extensions["techmatch.engine"].dispose()


@pytest.fixture
def redis_queue():
    if not REDIS_URL:
        pytest.skip("TECHMATCH_TEST_REDIS_URL not set: the Redis worker path is not run")
    from redis import Redis
    from rq import Queue

    name = f"techmatch-test-{uuid.uuid4().hex[:10]}"
    connection = Redis.from_url(REDIS_URL)
    queue = Queue(name, connection=connection)
    yield name, queue, connection
    queue.delete(delete_jobs=True)
    connection.close()


def test_worker_on_redis(tmp_path, encoder, redis_queue, monkeypatch):
    """Writes queue jobs on the real Redis; an RQ worker runs them in an app it builds itself."""
    from rq import SimpleWorker

    import web.worker_cli as worker_cli

    name, queue, connection = redis_queue
    db = f"sqlite:///{tmp_path / 'worker.sqlite3'}"
    app = make_app(tmp_path, encoder, REDIS_URL=REDIS_URL, ALERT_QUEUE=name)
    ids = people(app)
    demand, achievement = write_pair(app, ids)
    assert len(queue) == 2 and alerts_of(app, ids["ent"]) == []  # queued, not yet run
    # The worker process knows only its environment: create_app reads TECHMATCH_*.
    for key, value in {"DATABASE_URL": db, "SECRET_KEY": "worker", "CACHE_DIR": str(encoder.cache_dir),
                       "INSTANCE": str(tmp_path / "worker-instance"), "RATELIMIT_ENABLED": "false"}.items():
        monkeypatch.setenv(f"TECHMATCH_{key}", value)
    monkeypatch.setattr(worker_cli, "_app", None)
    assert SimpleWorker([queue], connection=connection).work(burst=True)
    assert len(queue) == 0
    got = alerts_of(app, ids["ent"])
    assert [n.link for n in got] == [f"/achievements/{achievement.id}"]
    built = worker_cli._app
    assert built is not None and built is not app and built.config["DATABASE_URL"] == db
    # A job run again adds nothing twice: it is done, and its alerts are de-duplicated anyway.
    outbox = built.extensions["techmatch.matcher"].outbox
    assert outbox.pending(older_than=timedelta(0)) == []
    with Session(app.extensions["techmatch.engine"]) as s:
        job_ids = s.exec(select(Job.id)).all()
    assert all(outbox.run(j) for j in job_ids)
    from matcher.alerts import process_new_record

    assert process_new_record(built.extensions["techmatch.matcher"], Side.achievement, achievement.id) == []
    assert len(alerts_of(app, ids["ent"])) == 1
    built.extensions["techmatch.engine"].dispose()
    app.extensions["techmatch.engine"].dispose()


def test_worker_command(tmp_path, encoder, redis_queue):
    """``techmatch worker --burst`` works the app's queue inside the app it was started with."""
    name, queue, _ = redis_queue
    app = make_app(tmp_path, encoder, REDIS_URL=REDIS_URL, ALERT_QUEUE=name)
    ids = people(app)
    _, achievement = write_pair(app, ids)
    assert len(queue) == 2
    result = app.test_cli_runner().invoke(args=["worker", "--burst"])
    assert result.exit_code == 0, result.output
    assert name in result.output and len(queue) == 0
    assert [n.link for n in alerts_of(app, ids["ent"])] == [f"/achievements/{achievement.id}"]
    app.extensions["techmatch.engine"].dispose()


def test_worker_command_needs_redis(tmp_path, encoder):
    app = make_app(tmp_path, encoder)
    result = app.test_cli_runner().invoke(args=["worker", "--burst"])
    assert result.exit_code != 0 and "REDIS_URL" in result.output
    app.extensions["techmatch.engine"].dispose()


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of this test's own, on its own port, that the test can stop and start."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: the Redis-down test needs a server of its own")
    port = free_port()

    class Server:
        url = f"redis://127.0.0.1:{port}/0"
        proc = None

        def start(self):
            self.proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                          "--appendonly", "no", "--dir", str(tmp_path)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            from redis import Redis

            for _ in range(100):
                try:
                    if Redis.from_url(self.url).ping():
                        return
                except Exception:
                    time.sleep(0.05)
            raise RuntimeError("redis-server did not start")

        def stop(self):
            if self.proc is not None:
                self.proc.terminate()
                self.proc.wait(timeout=10)
                self.proc = None

    server = Server()
    server.start()
    yield server
    server.stop()


def test_nothing_lost_when_redis_is_down(tmp_path, encoder, own_redis):
    """With Redis stopped, writes and pages keep working and the job waits in the outbox;
    once Redis is back, the worker delivers it and the alert arrives."""
    app = make_app(tmp_path, encoder, REDIS_URL=own_redis.url, RATELIMIT_ENABLED=True)
    ids = people(app)
    svc = app.extensions["techmatch.matcher"]
    demand = svc.create_demand(data=demand_data(ids["ent_org"]))
    own_redis.stop()
    achievement = svc.create_achievement(data=achievement_data(ids["inst_org"]))  # the write succeeds
    client = app.test_client()
    assert client.get(f"/achievements/{achievement.id}").status_code == 200  # and pages work
    assert client.get(f"/demands/{demand.id}").status_code == 200
    pending = svc.outbox.pending(older_than=timedelta(0))
    assert len(pending) == 2, "both jobs wait in the outbox (the first was queued on a Redis now gone)"
    assert alerts_of(app, ids["ent"]) == []
    own_redis.start()  # an empty Redis: the queued job of the first write is gone with the old server
    result = app.test_cli_runner().invoke(args=["worker", "--burst"])
    assert result.exit_code == 0, result.output
    assert "2 pending jobs queued" in result.output
    assert [n.link for n in alerts_of(app, ids["ent"])] == [f"/achievements/{achievement.id}"]
    assert svc.outbox.pending(older_than=timedelta(0)) == []
    app.extensions["techmatch.engine"].dispose()
