"""One error renderer: a bilingual page for people, JSON under ``/api/``.

Domain exceptions (:mod:`matcher.errors`) map onto their HTTP status; a 500
rolls back the request's database session so nothing half-written stays.
"""

from __future__ import annotations

from flask import Flask, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException

from matcher.errors import MatcherError

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
CSRF_HINT = ("表单安全令牌缺失或已过期, 请刷新页面后重新提交。",
             "The form's security token is missing or has expired: reload the page and submit again.")


def wants_json() -> bool:
    return request.path.startswith("/api/")


def render_error(status: int, message: str | None = None, *, csrf: bool = False):
    """The response for an error ``status``: JSON under ``/api/``, else the bilingual page."""
    zh_title, en_title, zh_hint, en_hint = MESSAGES.get(
        status, MESSAGES[500] if status >= 500 else MESSAGES[400])
    if csrf:
        zh_hint, en_hint = CSRF_HINT
    if wants_json():
        return jsonify({"error": {"code": status, "message": message or f"{zh_title} / {en_title}"}}), status
    return render_template("errors/error.html", status=status, zh_title=zh_title, en_title=en_title,
                           zh_hint=zh_hint, en_hint=en_hint), status


def handle_http(exc: HTTPException):
    """Every 4xx/5xx, including unhandled exceptions (Flask wraps them in a 500)."""
    from flask_wtf.csrf import CSRFError

    status = exc.code or 500
    if status >= 500:
        _rollback()  # Flask has logged the original exception already
    message = exc.description if wants_json() and exc.description and status < 500 else None
    response, status = render_error(status, message, csrf=isinstance(exc, CSRFError))
    if status == 405 and getattr(exc, "valid_methods", None):
        response = make_response(response, status)
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response, status


def handle_domain(exc: MatcherError):
    return render_error(exc.status, str(exc) if wants_json() else None)


def _rollback() -> None:
    from web.auth import accounts

    accounts.rollback_request_session()


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(MatcherError, handle_domain)
