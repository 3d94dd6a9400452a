"""Template filters and globals: highlighting, enum labels, money, languages.

Everything that shows user text escapes it; :func:`highlight` builds its
``<mark>`` tags around escaped pieces, so no template needs ``|safe``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from urllib.parse import urlencode

from flask import Flask, request, url_for
from flask_babel import format_date, get_locale
from markupsafe import Markup, escape

from matcher import models

ENUMS = {
    "IndustryChain": models.IndustryChain,
    "CoopMode": models.CoopMode,
    "AchievementKind": models.AchievementKind,
    "Maturity": models.Maturity,
    "DemandStatus": models.DemandStatus,
    "AchievementStatus": models.AchievementStatus,
    "OrgKind": models.OrgKind,
    "Role": models.Role,
}
LANGUAGE_NAMES = {"zh": "中文", "en": "English"}


def lang() -> str:
    locale = get_locale()
    return "en" if locale is not None and locale.language == "en" else "zh"


def highlight(text: str | None, terms: Iterable[str] | None) -> Markup:
    """``text`` escaped, with every occurrence of ``terms`` wrapped in ``<mark>``."""
    text = text or ""
    words = sorted({t for t in (terms or []) if t and t.strip()}, key=len, reverse=True)
    if not words:
        return escape(text)
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    out: list[Markup] = []
    pos = 0
    for m in pattern.finditer(text):
        out.append(escape(text[pos:m.start()]))
        out.append(Markup("<mark>%s</mark>") % m.group(0))
        pos = m.end()
    out.append(escape(text[pos:]))
    return Markup("").join(out)


def excerpt(text: str | None, length: int = 120) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def label(value, enum: str) -> str:
    """The label of an enumeration value in the UI's language (the raw value if unknown)."""
    if value is None or value == "":
        return ""
    try:
        return ENUMS[enum](value).label(lang())
    except ValueError:
        return str(value)


def labels(values, enum: str) -> str:
    sep = ", " if lang() == "en" else "、"
    return sep.join(label(v, enum) for v in values or [])


def bilingual(message: str | None) -> str:
    """The half of a ``"中文 / English"`` domain message in the UI's language."""
    message = message or ""
    if " / " not in message:
        return message
    zh, en = message.split(" / ", 1)
    return en if lang() == "en" else zh


def money(value: float | None) -> str:
    """An amount in 万元 (ten thousand yuan)."""
    if value is None:
        return "面议" if lang() == "zh" else "Negotiable"
    if lang() == "en":
        return f"CNY {value * 10000:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") + " 万元"


def day(value: date | datetime | None) -> str:
    if value is None:
        return ""
    return format_date(value, "medium" if lang() == "en" else "yyyy-MM-dd")


def percent(value: float | None) -> str:
    return "" if value is None else f"{round(max(0.0, min(1.0, value)) * 100)}%"


def check_detail(check: dict) -> str:
    return check.get("detail_en" if lang() == "en" else "detail_zh") or check.get("name", "")


def url_with(**changes) -> str:
    """The current URL with some query parameters changed (None removes one)."""
    args = {k: v for k, v in request.args.items(multi=False)}
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value
    query = urlencode(args)
    return request.path + (f"?{query}" if query else "")


def language_url(code: str) -> str:
    return url_for("main.set_language", code=code, next=request.full_path.rstrip("?"))


def init_app(app: Flask) -> None:
    for name, fn in {"highlight": highlight, "excerpt": excerpt, "label": label, "labels": labels,
                     "bilingual": bilingual, "money": money, "day": day, "percent": percent,
                     "check_detail": check_detail}.items():
        app.add_template_filter(fn, name)

    @app.context_processor
    def portal_globals():
        from matcher.records import Records
        from web.security import current_viewer

        current = lang()
        return {
            "lang": current,
            "other_lang": "en" if current == "zh" else "zh",
            "language_names": LANGUAGE_NAMES,
            "language_url": language_url,
            "url_with": url_with,
            "enums": ENUMS,
            "can_create": lambda side: Records.can_create(current_viewer(), side),
        }
