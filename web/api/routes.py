"""The JSON API at ``/api/v1``: demands, achievements, matches, search, tokens.

Every answer is JSON; errors are ``{"error": {"code", "message", "fields"}}``.
Callers authenticate with ``Authorization: Bearer <token>`` (from
``POST /api/v1/auth/token``); without one they are anonymous and read public
records only.  Confidential demands of other organisations are answered with
404, exactly like records that do not exist.

The blueprint sets itself up when registered (``bp.record_once``): the token
rate limit, and exemption from Flask-WTF's CSRF protection (the API takes no
cookies).  ``init_app(app)`` does the same and may be called again safely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, current_app, request, url_for
from pydantic import BaseModel, ValidationError
from spectree import Response
from werkzeug.exceptions import BadRequest, HTTPException

from matcher import failures
from matcher.errors import MatcherError, field_errors
from matcher.models import Role, Side
from matcher.retrieval import Filters
from matcher.service import MatcherService
from matcher.sides import SIDES, SideSpec, parse_side
from web.api import ratelimit, serialise
from web.api.auth import authenticate, load_bearer, require, viewer
from web.api.openapi import AUTH, OPTIONAL_AUTH, document, errors, spec
from web.api.ratelimit import address_and_username, failed, limiter, token_limit, token_limit_ip
from web.api.schemas import (
    AchievementIn,
    AchievementListQuery,
    AchievementOut,
    AchievementPage,
    AchievementPatch,
    AchievementResults,
    DemandIn,
    DemandListQuery,
    DemandOut,
    DemandPage,
    DemandPatch,
    DemandResults,
    MatchQuery,
    SearchQuery,
    SearchResults,
    TokenOut,
    TokenRequest,
)
from web.errors import ApiError, handle_api, handle_domain, handle_http, handle_unexpected
from web.extensions import engine, matcher
from web.security import issue_token

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_BODY = 256 * 1024  # bytes; API_MAX_CONTENT_LENGTH overrides
BODY_METHODS = {"POST", "PUT", "PATCH"}
BODYLESS = {"api.notifications_read"}  # POSTs that take no body


# --- setup -------------------------------------------------------------------------

def init_app(app: Flask) -> None:
    """Rate limiting and CSRF exemption for the API (idempotent)."""
    if "techmatch.api" not in app.extensions:
        app.extensions["techmatch.api"] = True
        ratelimit.init_app(app)
    _exempt_from_csrf(app)


def _exempt_from_csrf(app: Flask) -> None:
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)


@bp.record_once
def _on_register(state) -> None:
    app = state.app
    init_app(app)
    if "csrf" not in app.extensions:
        # CSRFProtect may be set up after this blueprint: its check then runs
        # after this hook, which exempts the blueprint the moment it appears.
        app.before_request(lambda: _exempt_from_csrf(app))


bp.register_error_handler(ApiError, handle_api)
bp.register_error_handler(MatcherError, handle_domain)
bp.register_error_handler(HTTPException, handle_http)
bp.register_error_handler(Exception, handle_unexpected)


@bp.before_request
def _limit_body() -> None:
    limit = int(current_app.config.get("API_MAX_CONTENT_LENGTH") or MAX_BODY)
    request.max_content_length = limit  # also stops chunked bodies without a length
    if request.content_length is not None and request.content_length > limit:
        kb = max(1, limit // 1024)
        raise ApiError(413, f"请求体过大, 最多 {kb} KB / request body too large (at most {kb} KB)")


bp.before_request(load_bearer)


@bp.before_request
def _parse_json() -> None:
    if request.method not in BODY_METHODS:
        return
    if request.endpoint in BODYLESS and not request.get_data(cache=True):
        return
    if not request.is_json:
        raise ApiError(400, "请求体须为 JSON (Content-Type: application/json) / "
                            "the body must be JSON (Content-Type: application/json)")
    try:
        body = request.get_json()
    except BadRequest as exc:
        raise ApiError(400, "JSON 格式错误 / malformed JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "JSON 请求体须为对象 / the JSON body must be an object")


@bp.after_request
def _vary(response):
    response.vary.add("Authorization")  # the same URL answers differently per caller
    return response


def svc() -> MatcherService:
    return matcher()


def _query() -> dict[str, Any]:
    """The validated query of this request as plain JSON values (enums as strings)."""
    return request.context.query.model_dump(mode="json")


# --- tokens --------------------------------------------------------------------------

@bp.post("/auth/token")
@limiter.limit(token_limit, key_func=address_and_username, deduct_when=failed)
@limiter.limit(token_limit_ip, deduct_when=failed)
@spec.validate(json=TokenRequest, resp=Response(HTTP_200=TokenOut, **errors(400, 401, 413, 429)),
               tags=["auth"], operation_id="issue_token")
def token():
    """换取访问令牌 / exchange a username and password for a bearer token.

    Failed attempts are rate limited per client address and user name.
    """
    data: TokenRequest = request.context.json
    user = authenticate(data.username, data.password)
    if user is None:
        raise ApiError(401, "用户名或密码错误 / wrong username or password")
    value, expires = issue_token(engine(), user.id)
    return ({"token": value, "token_type": "bearer", "expires_at": expires.isoformat()}, 200,
            {"Cache-Control": "no-store"})


# --- demands and achievements ----------------------------------------------------------

@dataclass(frozen=True)
class ApiModels:
    """The API's request and response models of one side (what the side is: :mod:`matcher.sides`)."""

    spec: SideSpec
    new: type[BaseModel]
    patch: type[BaseModel]
    out: type[BaseModel]
    page: type[BaseModel]
    list_query: type[BaseModel]
    matches: type[BaseModel]  # the other side, ranked for one of these


API_MODELS = {
    Side.demand: ApiModels(SIDES[Side.demand], DemandIn, DemandPatch, DemandOut, DemandPage,
                           DemandListQuery, AchievementResults),
    Side.achievement: ApiModels(SIDES[Side.achievement], AchievementIn, AchievementPatch, AchievementOut,
                                AchievementPage, AchievementListQuery, DemandResults),
}


def _one(record) -> dict[str, Any]:
    return serialise.records([record], viewer())[0]


def _views(models: ApiModels) -> dict[str, Callable[..., Any]]:
    s = models.spec

    def list_records():
        q = _query()
        page, per_page = q.pop("page"), q.pop("per_page")
        rows, total = svc().list_records(s.side, viewer=viewer(), filters=Filters(**q),
                                         page=page, per_page=per_page)
        return {"items": serialise.records(rows, viewer()), "total": total,
                "page": page, "per_page": per_page}

    def create():
        data = request.context.json
        values = data.model_dump()
        values["organisation_id"] = svc().records.owner_for(viewer(), s.side, data.organisation_id)
        try:
            model = s.create.model_validate(values)
        except ValidationError as exc:
            raise ApiError(422, fields=field_errors(exc)) from exc
        record = svc().create(s.side, model)
        location = url_for(f"api.{s.plural}_detail", record_id=record.id)
        return _one(record), 201, {"Location": location}

    def detail(record_id: int):
        return _one(svc().get(s.side, record_id, viewer()))

    def update(record_id: int):
        svc().records.editable(s.side, record_id, viewer())
        return _one(svc().update(s.side, record_id, request.context.json))

    def delete(record_id: int):
        svc().records.editable(s.side, record_id, viewer())
        svc().delete(s.side, record_id)
        return "", 204

    def matches(record_id: int):
        q = _query()
        k = q.pop("k")
        found = svc().match(s.side, record_id, k=k, viewer=viewer(), filters=Filters(**q))
        results = serialise.results(found, s.other.name, viewer())
        pairs = [(record_id, r.record.id) if s.side is Side.demand else (r.record.id, record_id)
                 for r in found]
        warned = failures.warnings_for(engine(), svc().encoder.model_id, pairs, viewer())
        for item, pair in zip(results, pairs, strict=True):
            item["warnings"] = warned[pair]
        return {"results": results}

    noun, zh = s.en, s.zh
    list_records.__doc__ = f"{zh}列表 / list {noun}s (newest first, filtered, paged)."
    create.__doc__ = f"发布{zh} / create a {noun}."
    detail.__doc__ = f"{zh}详情 / one {noun}."
    update.__doc__ = f"修改{zh} / change some fields of a {noun} (own organisation or broker)."
    delete.__doc__ = f"删除{zh} / delete a {noun} (own organisation or broker; kept hidden, its id never reused)."
    matches.__doc__ = (f"为{zh}匹配 / the best {s.other.en}s for a {noun}, best first "
                       "(confidential demands only for brokers and their own organisation).")
    return {"list": list_records, "create": create, "detail": detail, "update": update,
            "delete": delete, "matches": matches}


def _register(models: ApiModels) -> None:
    views = _views(models)
    s = models.spec
    tags = [s.plural]
    base, one = f"/{s.plural}", f"/{s.plural}/<int:record_id>"
    creators = (s.owner_role, Role.broker.value)
    routes = [
        ("list", base, "GET", (), dict(
            query=models.list_query, security=OPTIONAL_AUTH,
            resp=Response(HTTP_200=models.page, **errors(401, 422)))),
        ("create", base, "POST", creators, dict(
            json=models.new, security=AUTH,
            resp=Response(HTTP_201=models.out, **errors(400, 401, 403, 413, 422)))),
        ("detail", one, "GET", (), dict(
            security=OPTIONAL_AUTH, resp=Response(HTTP_200=models.out, **errors(401, 404)))),
        ("update", one, "PATCH", (), dict(
            json=models.patch, security=AUTH,
            resp=Response(HTTP_200=models.out, **errors(400, 401, 403, 404, 413, 422)))),
        ("delete", one, "DELETE", (), dict(
            security=AUTH, resp=Response("HTTP_204", **errors(401, 403, 404)))),
        ("matches", f"{one}/matches", "GET", (), dict(
            query=MatchQuery, security=OPTIONAL_AUTH,
            resp=Response(HTTP_200=models.matches, **errors(401, 404, 422)))),
    ]
    for name, rule, method, roles, options in routes:
        endpoint = f"{s.plural}_{name}"
        view = spec.validate(tags=tags, operation_id=endpoint, **options)(views[name])
        if method in ("POST", "PATCH", "DELETE"):
            view = require(*roles)(view)
        bp.add_url_rule(rule, endpoint=endpoint, view_func=view, methods=[method])


for _models in API_MODELS.values():
    _register(_models)


# --- search and the document -----------------------------------------------------------

@bp.get("/search")
@spec.validate(query=SearchQuery, resp=Response(HTTP_200=SearchResults, **errors(401, 422)),
               tags=["search"], security=OPTIONAL_AUTH, operation_id="search")
def search():
    """检索需求或成果 / free-text search of demands or achievements, best first."""
    q: SearchQuery = request.context.query
    side = parse_side(q.side)
    found = svc().search(q.q, side, k=q.k, viewer=viewer())
    return {"results": serialise.results(found, side.value, viewer())}


@bp.get("/openapi.json")
@spec.validate(resp=Response("HTTP_200"), tags=["meta"], operation_id="openapi")
def openapi():
    """本接口的 OpenAPI 文档 / this API's OpenAPI document."""
    return document()


from web.api import workflow  # noqa: E402,F401 - the broker workspace routes, on this blueprint
