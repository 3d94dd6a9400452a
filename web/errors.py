"""The one error renderer: a bilingual page for people, ``{"error": {...}}`` JSON under ``/api/``.

Every error of the app and of the API blueprint comes through :func:`render_error`:
HTTP errors, domain exceptions (:mod:`matcher.errors`, each with its status and,
for invalid input, field-by-field messages), :class:`ApiError` raised by API
views, and unexpected exceptions (a 500 that says nothing of the internals).
Services commit in their own transactions, so a failing request leaves nothing
half-written.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException

from matcher.errors import MatcherError, ValidationFailed

log = logging.getLogger(__name__)

# status -> (Chinese title, English title, Chinese hint, English hint)
MESSAGES: dict[int, tuple[str, str, str, str]] = {
    400: ("请求有误", "Bad request",
          "提交的内容无法处理。如果是表单, 可能已过期, 请刷新页面后重试。",
          "The request could not be processed. If you submitted a form, it may have expired: "
          "reload the page and try again."),
    401: ("需要登录", "Sign-in required", "请先登录后再访问此页面。", "Please sign in to open this page."),
    403: ("无权访问", "Forbidden", "您的账号没有执行此操作的权限。",
          "Your account is not allowed to do this."),
    404: ("页面不存在", "Not found", "您要找的页面或记录不存在, 或您无权查看。",
          "The page or record does not exist, or you may not see it."),
    405: ("不支持的请求方式", "Method not allowed", "此地址不支持该请求方式。",
          "This address does not accept this kind of request."),
    409: ("与当前状态冲突", "Conflict", "该操作与当前状态冲突, 未做任何修改。",
          "This conflicts with the current state; nothing was changed."),
    413: ("提交内容过大", "Request too large", "提交的内容超过了大小限制, 请精简后重试。",
          "What you sent is larger than allowed; shorten it and try again."),
    422: ("输入有误", "Invalid input", "请检查输入内容后重试。", "Please check what you entered and try again."),
    429: ("请求过于频繁", "Too many requests", "操作过于频繁, 请稍后再试。",
          "Too many attempts; please wait a minute and try again."),
    500: ("服务器内部错误", "Internal server error", "服务器遇到问题, 操作未完成, 数据未被修改。请稍后重试。",
          "Something went wrong on our side; nothing was changed. Please try again later."),
    503: ("服务暂不可用", "Service unavailable", "服务暂时不可用, 请稍后重试。",
          "The service is temporarily unavailable; please try again later."),
}
# What the JSON API says for each status (a caller there holds a token, not a session).
API_MESSAGES: dict[int, str] = {
    400: "请求格式有误 / bad request",
    401: "需要有效的访问令牌 / a valid bearer token is required",
    403: "无权执行此操作 / you may not do this",
    404: "记录不存在 / not found",
    405: "不支持该请求方法 / method not allowed",
    409: "与当前状态冲突 / conflicts with the current state",
    413: "请求体过大 / request body too large",
    422: "输入有误 / invalid input",
    429: "请求过于频繁, 请稍后再试 / too many requests, try again later",
    500: "服务器内部错误 / internal server error",
    503: "服务暂不可用, 请稍后重试 / service unavailable, try again later",
}
CSRF_HINT = ("表单安全令牌缺失或已过期, 请刷新页面后重新提交。",
             "The form's security token is missing or has expired: reload the page and submit again.")
PASSED_HEADERS = (405, 429)  # Allow, Retry-After and the rate-limit headers go through


class ApiError(Exception):
    """An error the API answers with as it is (status, bilingual message, field messages)."""

    def __init__(self, code: int, message: str | None = None, fields: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message or API_MESSAGES.get(code, str(code)))
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers


def wants_json() -> bool:
    return request.path.startswith("/api/")


def render_error(status: int, message: str | None = None, *, fields: dict[str, str] | None = None,
                 headers: Any = None, csrf: bool = False):
    """The response for an error ``status``: JSON under ``/api/``, else the bilingual page."""
    if wants_json():
        resp = jsonify({"error": {"code": status, "message": message or API_MESSAGES.get(status, str(status)),
                                  "fields": fields or {}}})
    else:
        zh_title, en_title, zh_hint, en_hint = MESSAGES.get(
            status, MESSAGES[500] if status >= 500 else MESSAGES[400])
        if csrf:
            zh_hint, en_hint = CSRF_HINT
        resp = make_response(render_template("errors/error.html", status=status, zh_title=zh_title,
                                             en_title=en_title, zh_hint=zh_hint, en_hint=en_hint))
    resp.status_code = status
    for key, value in headers or ():
        if key.lower() not in ("content-type", "content-length"):
            resp.headers[key] = value
    return resp


def handle_http(exc: HTTPException):
    """Every HTTP error, including unhandled exceptions (Flask wraps them in a 500)."""
    from flask_wtf.csrf import CSRFError

    status = exc.code or 500
    headers = None
    if status in PASSED_HEADERS:
        headers = list(exc.get_response().headers.items())
    message = None
    if wants_json() and status < 500 and status not in API_MESSAGES and exc.description:
        message = exc.description
    return render_error(status, message, headers=headers, csrf=isinstance(exc, CSRFError))


def handle_domain(exc: MatcherError):
    """A domain exception: its status, and its field messages for invalid input."""
    if exc.status >= 500:
        log.error("matcher error: %s", exc)
    fields = exc.errors if isinstance(exc, ValidationFailed) else None
    message = str(exc) if wants_json() and " / " in str(exc) else None
    return render_error(exc.status, message, fields=fields)


def handle_api(exc: ApiError):
    return render_error(exc.code, exc.message, fields=exc.fields,
                        headers=list(exc.headers.items()) if exc.headers else None)


def handle_unexpected(exc: Exception):
    """Anything else: logged, and a 500 that tells nothing of the internals."""
    if isinstance(exc, HTTPException):
        return handle_http(exc)
    log.exception("unhandled error")
    return render_error(500)


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(MatcherError, handle_domain)
    app.register_error_handler(ApiError, handle_api)
