"""The JSON API's edges: bad input, tokens, body limits, rate limits, CSRF, the OpenAPI document.

Most tests here need callers but no records, so they use ``people`` (users with
organisations, cheap password hashes) rather than the slow-to-build ``world``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from matcher.models import ApiToken, Side, User
from tests.conftest import make_org
from tests.web.conftest import PASSWORD
from tests.web.test_api import headers, make_tokens, new_achievement, new_demand

ERROR_KEYS = {"code", "message", "fields"}
FAST_HASH = "pbkdf2:sha256:1000"


def add_user(app, name, role, org=None):
    from werkzeug.security import generate_password_hash

    with Session(app.extensions["techmatch.engine"]) as session:
        session.add(User(username=name, password_hash=generate_password_hash(PASSWORD, FAST_HASH),
                         role=role, organisation_id=org))
        session.commit()


@pytest.fixture
def people(app):
    """Bearer tokens of an enterprise, an institution and a broker user; no records."""
    engine = app.extensions["techmatch.engine"]
    for name, role, kind in [("ent", "enterprise", "enterprise"), ("inst", "institution", "university"),
                             ("broker", "broker", "transfer_centre")]:
        add_user(app, name, role, make_org(engine, f"{name} 的机构", kind))
    return make_tokens(app)


@pytest.fixture
def tokens(app, world):
    return make_tokens(app)


def counts(app):
    svc = app.extensions["techmatch.matcher"]
    return svc.count(Side.demand), svc.count(Side.achievement)


def error(resp, status):
    assert resp.status_code == status, resp.get_data(True)
    assert resp.is_json and set(resp.json["error"]) == ERROR_KEYS
    assert resp.json["error"]["code"] == status
    return resp.json["error"]


# --- validation -------------------------------------------------------------------------

def test_invalid_fields_each_get_a_message_and_nothing_is_written(app, client, people):
    before = counts(app)
    body = new_demand(title="长" * 201, description="太短", industry_chain="mining", required_trl=12,
                      contact_email="not-an-email", cooperation_modes=["transfer", "barter"],
                      deadline="next week", budget_wan=-1, colour="red")
    err = error(client.post("/api/v1/demands", json=body, headers=headers(people, "ent")), 422)
    fields = err["fields"]
    assert set(fields) == {"title", "description", "industry_chain", "required_trl", "contact_email",
                           "cooperation_modes", "deadline", "budget_wan", "colour"}
    assert fields["title"].startswith("标题过长") and "title too long" in fields["title"]
    assert "至少 10" in fields["description"]
    assert "nonferrous" in fields["industry_chain"]
    assert "不能大于 9" in fields["required_trl"]
    assert "unknown field colour" in fields["colour"]
    assert err["message"] == "输入有误 / invalid input"
    assert counts(app) == before


def test_missing_required_fields(app, client, people):
    err = error(client.post("/api/v1/achievements", json={"title": "题目"}, headers=headers(people, "inst")),
                422)
    assert set(err["fields"]) == {"description", "industry_chain", "kind"}
    assert err["fields"]["kind"] == "成果类型为必填项 / kind is required"


def test_model_messages_pass_through(client, people):
    body = new_achievement(ipc_codes=[f"C22C {i}/00" for i in range(25)])
    err = error(client.post("/api/v1/achievements", json=body, headers=headers(people, "inst")), 422)
    assert err["fields"]["ipc_codes"].startswith("IPC 分类号最多 20 个")


def test_patch_validation_writes_nothing(app, world, client, tokens):
    h = headers(tokens, "ent")
    url = f"/api/v1/demands/{world.demand.id}"
    original = client.get(url, headers=h).json
    for body, field in [({"required_trl": 0}, "required_trl"), ({"status": "archived"}, "status"),
                        ({"title": None}, "title"), ({"contact_email": "nope"}, "contact_email"),
                        ({"organisation_id": world.rival}, "organisation_id"),
                        ({"confidential": "perhaps"}, "confidential")]:
        err = error(client.patch(url, json=body, headers=h), 422)
        assert field in err["fields"], (body, err)
    assert client.get(url, headers=h).json == original


@pytest.mark.parametrize("query, field", [
    ("status=archived", "status"), ("industry_chain=mining", "industry_chain"), ("min_trl=10", "min_trl"),
    ("page=0", "page"), ("per_page=101", "per_page"), ("per_page=lots", "per_page"), ("colour=red", "colour"),
])
def test_bad_list_queries(client, query, field):
    assert field in error(client.get(f"/api/v1/demands?{query}"), 422)["fields"]


@pytest.mark.parametrize("k", ["0", "51", "-3", "many"])
def test_k_is_bounded(client, k):
    for path in ("/demands/1/matches", "/achievements/1/matches", "/search?q=铜"):  # checked before look-up
        sep = "&" if "?" in path else "?"
        assert "k" in error(client.get(f"/api/v1{path}{sep}k={k}"), 422)["fields"]


def test_search_needs_text_and_a_side(client):
    assert "q" in error(client.get("/api/v1/search"), 422)["fields"]
    assert "q" in error(client.get("/api/v1/search?q=%20%20"), 422)["fields"]
    assert "side" in error(client.get("/api/v1/search?q=铜&side=patents"), 422)["fields"]


def test_malformed_bodies_are_400(app, client, people):
    h = headers(people, "ent")
    before = counts(app)
    for kwargs in [dict(data="{title: oops", content_type="application/json"),
                   dict(data="", content_type="application/json"),
                   dict(data=json.dumps([new_demand()]), content_type="application/json"),
                   dict(data={"title": "表单提交"}),  # form-encoded
                   dict(data=json.dumps(new_demand()), content_type="text/plain")]:
        error(client.post("/api/v1/demands", headers=h, **kwargs), 400)
    error(client.patch("/api/v1/demands/1", data="nope", content_type="application/json",
                       headers=h), 400)
    error(client.post("/api/v1/auth/token", data="{", content_type="application/json"), 400)
    assert counts(app) == before


def test_oversize_body_is_413(app, client, people):
    before = counts(app)
    body = new_demand(description="很长的描述。" * 50_000)  # about 900 KB of UTF-8
    err = error(client.post("/api/v1/demands", json=body, headers=headers(people, "ent")), 413)
    assert "KB" in err["message"]
    assert counts(app) == before


def test_body_limit_is_configurable(app, client, people):
    app.config["API_MAX_CONTENT_LENGTH"] = 100
    error(client.post("/api/v1/demands", json=new_demand(), headers=headers(people, "ent")), 413)


def test_every_error_is_json(app, client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(app.extensions["techmatch.matcher"], "list_records", broken)
    err = error(client.get("/api/v1/demands"), 500)
    assert "fire" not in err["message"]
    # outside any API view (no such path, wrong method): the app's JSON errors under /api/
    for resp, status in [(client.get("/api/v1/nothing-here"), 404), (client.put("/api/v1/demands"), 405)]:
        assert resp.status_code == status and resp.is_json and resp.json["error"]["code"] == status


# --- tokens ---------------------------------------------------------------------------------

def test_token_round_trip(client, people):
    resp = client.post("/api/v1/auth/token", json={"username": "broker", "password": PASSWORD})
    assert resp.status_code == 200, resp.json
    assert resp.json["token_type"] == "bearer" and resp.headers["Cache-Control"] == "no-store"
    assert "Authorization" in resp.headers["Vary"]
    assert datetime.fromisoformat(resp.json["expires_at"]) > datetime.now(UTC)
    h = {"Authorization": f"Bearer {resp.json['token']}"}
    assert client.delete("/api/v1/demands/1", headers=h).status_code == 404  # authenticated: no 401


@pytest.mark.parametrize("body", [{"username": "broker", "password": "wrong"},
                                  {"username": "nobody", "password": PASSWORD}])
def test_wrong_credentials_are_401(client, people, body):
    err = error(client.post("/api/v1/auth/token", json=body), 401)
    assert err["message"] == "用户名或密码错误 / wrong username or password"


def test_token_request_validation(client):
    err = error(client.post("/api/v1/auth/token", json={"username": "broker"}), 422)
    assert set(err["fields"]) == {"password"}
    assert "extra" in error(client.post("/api/v1/auth/token",
                                        json={"username": "a", "password": "b", "extra": 1}), 422)["fields"]


def test_bad_tokens_are_401_even_for_public_reads(app, client, people):
    engine = app.extensions["techmatch.engine"]
    for value in ["Bearer not-a-token", "Bearer ", f"Basic {people['ent']}", "Bearer"]:
        resp = client.get("/api/v1/demands", headers={"Authorization": value})
        error(resp, 401)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # expired
    with Session(engine) as session:
        for row in session.exec(select(ApiToken)).all():
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
            session.add(row)
        session.commit()
    error(client.get("/api/v1/demands", headers=headers(people, "ent")), 401)


def test_deactivated_users_lose_their_tokens(app, client, people):
    with Session(app.extensions["techmatch.engine"]) as session:
        user = session.exec(select(User).where(User.username == "ent")).one()
        user.active = False
        session.add(user)
        session.commit()
    error(client.get("/api/v1/demands", headers=headers(people, "ent")), 401)
    error(client.post("/api/v1/auth/token", json={"username": "ent", "password": PASSWORD}), 401)


def test_session_cookie_is_not_api_authentication(app, world, client):
    """The API is exempt from CSRF checks, so it must never act on the portal's cookie."""
    with Session(app.extensions["techmatch.engine"]) as session:
        uid = session.exec(select(User).where(User.username == "broker")).one().id
    with client.session_transaction() as sess:
        sess["_user_id"] = str(uid)
        sess["_fresh"] = True
    error(client.post("/api/v1/demands", json=new_demand(world.ent)), 401)
    error(client.get(f"/api/v1/demands/{world.secret.id}"), 404)


# --- apps with other settings ------------------------------------------------------------

@pytest.fixture
def make_app(tmp_path, encoder):
    made = []

    def make(**config):
        from matcher.db import init_db
        from web import create_app

        app = create_app({
            "TESTING": True, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": False,
            "DATABASE_URL": f"sqlite:///{tmp_path / f'api{len(made)}.sqlite3'}",
            "RATELIMIT_ENABLED": False, "CACHE_DIR": str(encoder.cache_dir),
            "INSTANCE_PATH": str(tmp_path / f"instance{len(made)}"), **config,
        })
        init_db(app.extensions["techmatch.engine"])
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["techmatch.engine"].dispose()


def _user(app, name, role="broker"):
    org = make_org(app.extensions["techmatch.engine"], f"{name}的机构")
    add_user(app, name, role, org)
    return org


def test_failed_logins_are_rate_limited(make_app):
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://",
                   API_TOKEN_RATE_LIMIT="3 per minute", API_TOKEN_RATE_LIMIT_IP="5 per minute")
    _user(app, "alice")
    _user(app, "carol")
    client = app.test_client()
    good = {"username": "alice", "password": PASSWORD}
    for _ in range(4):  # successful logins never count
        assert client.post("/api/v1/auth/token", json=good).status_code == 200
    for _ in range(3):
        error(client.post("/api/v1/auth/token", json={**good, "password": "guess"}), 401)
    err = error(client.post("/api/v1/auth/token", json=good), 429)  # locked out, even with the password
    assert err["message"].startswith("请求过于频繁")
    # another user from the same address still may, until the address's own limit
    assert client.post("/api/v1/auth/token", json={"username": "carol", "password": PASSWORD}).status_code == 200
    for _ in range(2):
        error(client.post("/api/v1/auth/token", json={"username": "carol", "password": "x"}), 401)
    error(client.post("/api/v1/auth/token", json={"username": "carol", "password": PASSWORD}), 429)


@pytest.mark.parametrize("check_default", [True, False])
def test_api_is_exempt_from_csrf(make_app, check_default):
    """Bearer-token writes need no CSRF token, whether Flask-WTF checks every request or not."""
    app = make_app(WTF_CSRF_ENABLED=True, WTF_CSRF_CHECK_DEFAULT=check_default)
    assert "csrf" in app.extensions
    org = _user(app, "ent1", role="enterprise")
    client = app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": "ent1", "password": PASSWORD}).json["token"]
    resp = client.post("/api/v1/demands", json=new_demand(), headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 201 and resp.json["organisation_id"] == org


def test_csrf_exemption_when_csrf_is_set_up_after_the_api():
    from flask import Flask
    from flask_wtf.csrf import CSRFProtect

    from web.api.routes import bp

    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", RATELIMIT_ENABLED=False)
    app.register_blueprint(bp)
    CSRFProtect(app)  # after the blueprint: its check runs after the API's hook
    resp = app.test_client().post("/api/v1/auth/token", data="{", content_type="application/json")
    assert resp.status_code == 400 and resp.json["error"]["message"] == "JSON 格式错误 / malformed JSON"


# --- the OpenAPI document -----------------------------------------------------------------

EXPECTED_PATHS = {
    "/api/v1/auth/token": {"post"},
    "/api/v1/demands": {"get", "post"},
    "/api/v1/demands/{record_id}": {"get", "patch", "delete"},
    "/api/v1/demands/{record_id}/matches": {"get"},
    "/api/v1/achievements": {"get", "post"},
    "/api/v1/achievements/{record_id}": {"get", "patch", "delete"},
    "/api/v1/achievements/{record_id}/matches": {"get"},
    "/api/v1/search": {"get"},
    "/api/v1/openapi.json": {"get"},
    # the broker workspace (tests/web/test_api_workflow.py checks these in detail)
    "/api/v1/matches": {"get", "post"},
    "/api/v1/matches/{match_id}": {"get", "patch"},
    "/api/v1/broker/queue": {"get"},
    "/api/v1/failures": {"get"},
    "/api/v1/notifications": {"get"},
    "/api/v1/notifications/{notification_id}/read": {"post"},
    "/api/v1/subscriptions": {"get", "post"},
    "/api/v1/subscriptions/{subscription_id}": {"delete"},
    "/api/v1/calls": {"get", "post"},
    "/api/v1/calls/{call_id}": {"get"},
    "/api/v1/calls/{call_id}/submissions": {"post"},
    "/api/v1/calls/{call_id}/submissions/{submission_id}": {"patch"},
    "/api/v1/stats": {"get"},
}
# GETs open to anonymous callers (public records); the other GETs need a token
PUBLIC_GETS = {"/api/v1/demands", "/api/v1/demands/{record_id}", "/api/v1/demands/{record_id}/matches",
               "/api/v1/achievements", "/api/v1/achievements/{record_id}",
               "/api/v1/achievements/{record_id}/matches", "/api/v1/search",
               "/api/v1/calls", "/api/v1/calls/{call_id}"}


def test_openapi_document(client, people):
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    doc = json.loads(resp.get_data(as_text=True))
    assert doc["openapi"].startswith("3.")
    assert {p: set(ops) for p, ops in doc["paths"].items()} == EXPECTED_PATHS
    schemes = doc["components"]["securitySchemes"]
    assert set(schemes) == {"bearerAuth"}
    assert (schemes["bearerAuth"]["type"], schemes["bearerAuth"]["scheme"]) == ("http", "bearer")
    schemas = doc["components"]["schemas"]

    def ref(node):
        name = node["$ref"].rsplit("/", 1)[-1]
        assert name in schemas, name
        return schemas[name]

    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["operationId"], (path, method)
            if method in ("post", "patch") and path != "/api/v1/notifications/{notification_id}/read":
                body = ref(op["requestBody"]["content"]["application/json"]["schema"])
                assert body["additionalProperties"] is False, (path, method)
            if method in ("post", "patch", "delete") and path != "/api/v1/auth/token":
                assert op["security"] == [{"bearerAuth": []}], (path, method)
            if method == "get" and path in PUBLIC_GETS:
                assert {"bearerAuth": []} in op["security"] and {} in op["security"], path
            elif method == "get" and path != "/api/v1/openapi.json":
                assert op["security"] == [{"bearerAuth": []}], path
            action = path in ("/api/v1/auth/token", "/api/v1/notifications/{notification_id}/read")
            ok = {"get": "200", "post": "200" if action else "201",
                  "patch": "200", "delete": "204"}[method]
            assert ok in op["responses"], (path, method)
            if path != "/api/v1/openapi.json" and method != "delete":
                ref(op["responses"][ok]["content"]["application/json"]["schema"])
            if path != "/api/v1/openapi.json":
                assert any(c in op["responses"] for c in ("401", "422")), (path, method)
    demand_in = ref(doc["paths"]["/api/v1/demands"]["post"]["requestBody"]["content"]["application/json"]
                    ["schema"])
    assert {"title", "description", "industry_chain", "confidential", "contact_email",
            "organisation_id"} <= set(demand_in["properties"])
    demand_out = schemas["DemandOut"]
    assert "contact_phone" not in demand_out["required"] and "organisation_name" in demand_out["properties"]
    list_params = {p["name"] for p in doc["paths"]["/api/v1/demands"]["get"]["parameters"]}
    assert {"industry_chain", "region", "min_trl", "cooperation_mode", "status", "page", "per_page"} <= list_params
    refs, todo = [], [doc]
    while todo:  # every reference in the document resolves
        node = todo.pop()
        if isinstance(node, dict):
            refs += [node["$ref"]] if "$ref" in node else []
            todo += node.values()
        elif isinstance(node, list):
            todo += node
    assert refs and all(r.rsplit("/", 1)[-1] in schemas for r in refs)
    # the same document for everybody, and again on a second request
    assert client.get("/api/v1/openapi.json", headers=headers(people, "broker")).json == doc
