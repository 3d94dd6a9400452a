"""The API's OpenAPI document and request validation, both from the same pydantic models.

spectree validates each request against the models named in the route's
decorator and builds the document from those decorators; its hooks turn a
failed validation into our error format and a response that does not match
its declared model into a logged 500, so the document stays truthful.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from spectree import SecurityScheme, SecuritySchemeData, SpecTree

from web.api.errors import ApiError, field_errors
from web.api.schemas import ErrorOut

log = logging.getLogger(__name__)

BEARER = "bearerAuth"
AUTH = {BEARER: []}  # a token is required
OPTIONAL_AUTH = [{}, {BEARER: []}]  # anonymous callers see public records only


def _before(req, resp, req_validation_error, instance, model_adapter) -> None:
    if req_validation_error is not None:
        raise ApiError(422, fields=field_errors(req_validation_error))


def _after(req, resp, resp_validation_error, instance, model_adapter) -> None:
    if resp_validation_error is not None:
        log.error("response does not match its schema: %s", resp_validation_error)
        raise ApiError(500)


spec = SpecTree(
    "flask",
    title="techmatch API",
    version="1",
    description="产业出题, 科技答题: 技术需求与科技成果的匹配 / matching technology demands "
                "with research achievements. 认证: `POST /api/v1/auth/token` 换取 Bearer 令牌 / "
                "authenticate with a bearer token from `POST /api/v1/auth/token`.",
    mode="strict",
    annotations=False,
    before=_before,
    after=_after,
    validation_error_model=ErrorOut,
    # plain model names: they are unique in web.api.schemas, and shared enums appear once
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    security_schemes=[SecurityScheme(name=BEARER, data=SecuritySchemeData(
        type="http", scheme="bearer",
        description="POST /api/v1/auth/token 取得的令牌 / a token from POST /api/v1/auth/token"))],
)


def errors(*codes: int) -> dict[str, Any]:
    """``Response`` keyword arguments documenting error codes with the error body."""
    return {f"HTTP_{c}": ErrorOut for c in codes}


_lock = threading.Lock()


def document() -> dict[str, Any]:
    """The OpenAPI document (built once, from the routes of the current app)."""
    with _lock:  # spectree builds it lazily and moves nested definitions as it does
        return spec.spec
