"""Every API error as ``{"error": {"code", "message", "fields"}}``, Chinese first."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, jsonify
from werkzeug.exceptions import HTTPException

from matcher.errors import MatcherError, ValidationFailed

log = logging.getLogger(__name__)

MESSAGES: dict[int, str] = {
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
}

# Field labels for messages a person can act on: (Chinese, English).
LABELS: dict[str, tuple[str, str]] = {
    "title": ("标题", "title"),
    "description": ("描述", "description"),
    "industry_chain": ("产业链", "industry chain"),
    "technical_field": ("技术领域", "technical field"),
    "region": ("地区", "region"),
    "budget_wan": ("预算(万元)", "budget (10k CNY)"),
    "deadline": ("截止日期", "deadline"),
    "cooperation_modes": ("合作方式", "cooperation modes"),
    "cooperation_mode": ("合作方式", "cooperation mode"),
    "required_trl": ("技术成熟度要求", "required TRL"),
    "status": ("状态", "status"),
    "confidential": ("保密", "confidential"),
    "contact_name": ("联系人", "contact name"),
    "contact_phone": ("联系电话", "contact phone"),
    "contact_email": ("联系邮箱", "contact email"),
    "organisation_id": ("机构", "organisation"),
    "kind": ("成果类型", "kind"),
    "patent_number": ("专利号", "patent number"),
    "ipc_codes": ("IPC 分类号", "IPC codes"),
    "trl": ("技术成熟度", "TRL"),
    "min_trl": ("最低技术成熟度", "minimum TRL"),
    "maturity": ("成熟阶段", "maturity"),
    "transfer_modes": ("转化方式", "transfer modes"),
    "asking_price_wan": ("报价(万元)", "asking price (10k CNY)"),
    "team": ("团队", "team"),
    "username": ("用户名", "username"),
    "password": ("密码", "password"),
    "q": ("检索内容", "search text"),
    "side": ("检索对象", "side"),
    "k": ("结果数", "k"),
    "page": ("页码", "page"),
    "per_page": ("每页条数", "per_page"),
}


class ApiError(Exception):
    """An error the API answers with as it is (status, bilingual message, field messages)."""

    def __init__(self, code: int, message: str | None = None, fields: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message or MESSAGES.get(code, str(code)))
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers


def error_response(code: int, message: str | None = None, fields: dict[str, str] | None = None,
                   headers: Any = None) -> Response:
    """The JSON error answer."""
    resp = jsonify({"error": {"code": code, "message": message or MESSAGES.get(code, str(code)),
                              "fields": fields or {}}})
    resp.status_code = code
    if headers:
        for key, value in headers:
            if key.lower() not in ("content-type", "content-length"):
                resp.headers[key] = value
    return resp


def field_errors(exc) -> dict[str, str]:
    """A pydantic ``ValidationError`` as ``{field: "中文 / English"}`` (first message per field)."""
    out: dict[str, str] = {}
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int)) or "_"
        out.setdefault(loc, _message(loc, err))
    return out


def _message(loc: str, err: dict[str, Any]) -> str:
    zh, en = LABELS.get(loc.split(".")[0], (loc, loc))
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    msg = str(err.get("msg", "invalid"))
    if kind == "missing":
        return f"{zh}为必填项 / {en} is required"
    if kind == "extra_forbidden":
        return f"不支持的字段 {loc} / unknown field {loc}"
    if kind == "string_too_long":
        n = ctx.get("max_length")
        return f"{zh}过长, 最多 {n} 字符 / {en} too long (at most {n} characters)"
    if kind == "string_too_short":
        n = ctx.get("min_length")
        if n == 1:
            return f"{zh}不能为空 / {en} must not be empty"
        return f"{zh}过短, 至少 {n} 字符 / {en} too short (at least {n} characters)"
    if kind in ("enum", "literal_error"):
        return f"{zh}取值无效, 可选 {ctx.get('expected')} / invalid {en}, expected {ctx.get('expected')}"
    if kind in ("greater_than_equal", "greater_than"):
        n = ctx.get("ge", ctx.get("gt"))
        return f"{zh}不能小于 {n} / {en} must be at least {n}"
    if kind in ("less_than_equal", "less_than"):
        n = ctx.get("le", ctx.get("lt"))
        return f"{zh}不能大于 {n} / {en} must be at most {n}"
    if kind.startswith("int_"):
        return f"{zh}应为整数 / {en} must be an integer"
    if kind.startswith("float_"):
        return f"{zh}应为数字 / {en} must be a number"
    if kind.startswith("bool_"):
        return f"{zh}应为 true 或 false / {en} must be true or false"
    if kind.startswith("date_"):
        return f"{zh}应为日期 YYYY-MM-DD / {en} must be a date YYYY-MM-DD"
    if kind == "list_type":
        return f"{zh}应为列表 / {en} must be a list"
    if kind == "string_type":
        return f"{zh}应为文本 / {en} must be a string"
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
        if loc.endswith("email"):
            return f"{zh}格式无效 / invalid {en}: {msg}"
        if any("\u4e00" <= ch <= "\u9fff" for ch in msg):
            return msg  # the model's own message is already bilingual
    return f"{zh}无效 / invalid {en}: {msg}"


def handle_api(exc: ApiError) -> Response:
    return error_response(exc.code, exc.message, exc.fields,
                          headers=list(exc.headers.items()) if exc.headers else None)


def handle_http(exc: HTTPException) -> Response:
    code = exc.code or 500
    message = MESSAGES.get(code) or f"{exc.name}"
    headers = exc.get_response().headers if code in (405, 429) else None
    return error_response(code, message, headers=list(headers.items()) if headers else None)


def handle_matcher(exc: MatcherError) -> Response:
    fields = exc.errors if isinstance(exc, ValidationFailed) else None
    if exc.status >= 500:
        log.error("matcher error: %s", exc)
    return error_response(exc.status, fields=fields)


def handle_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error in the API")
    return error_response(500)
