"""Domain exceptions: the web layer maps them onto 4xx answers."""

from __future__ import annotations

from typing import Any


class MatcherError(Exception):
    """Base class for errors a caller can act on."""

    status = 400


class NotFound(MatcherError):
    """No such record, or one the caller may not see."""

    status = 404


class Forbidden(MatcherError):
    """The caller may see the record but not act on it."""

    status = 403


class ValidationFailed(MatcherError):
    """Input failed validation; ``errors`` maps field names to messages."""

    status = 422

    def __init__(self, errors: dict[str, str], message: str = "输入有误 / invalid input"):
        super().__init__(message)
        self.errors = errors


class Conflict(MatcherError):
    """The request conflicts with the current state (e.g. a forbidden transition)."""

    status = 409


class IndexStale(MatcherError):
    """A saved index does not agree with the database."""

    status = 500


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
    # the broker workspace
    "demand_id": ("需求", "demand"), "achievement_id": ("成果", "achievement"),
    "state": ("状态", "state"), "note": ("说明", "note"), "amount_wan": ("签约金额(万元)", "amount (10k CNY)"),
    "signed_on": ("签约日期", "signing date"), "reason": ("失败原因", "reason"),
    "broker_id": ("技术经纪人", "broker"), "stale_days": ("停滞天数", "stale days"),
    "limit": ("条数", "limit"), "unread": ("未读", "unread"), "query": ("检索内容", "query"),
    "reward_wan": ("悬赏金额(万元)", "reward (10k CNY)"), "proposal": ("方案", "proposal"),
    "score": ("评分", "score"), "verdict": ("评审结论", "verdict"),
}


def field_errors(exc) -> dict[str, str]:
    """A pydantic ``ValidationError`` as ``{field: "中文 / English"}`` (first message per field).

    The one converter: the API, the forms and the services all word errors this way.
    """
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
