"""Records as public JSON: enums as values, dates ISO, contacts only for those who may see them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from matcher.models import Achievement, Demand
from matcher.retrieval import MatchResult
from matcher.visibility import Viewer
from web.api.schemas import AchievementOut, DemandOut

CONTACT_FIELDS = ("contact_name", "contact_phone", "contact_email")
_FIELDS = {Demand: tuple(DemandOut.model_fields), Achievement: tuple(AchievementOut.model_fields)}


def record(rec: Demand | Achievement, viewer: Viewer, names: dict[int, str]) -> dict[str, Any]:
    """One demand or achievement as the viewer may see it."""
    out: dict[str, Any] = {}
    for name in _FIELDS[type(rec)]:
        if name == "organisation_name":
            out[name] = names.get(rec.organisation_id)
        elif name in CONTACT_FIELDS and not viewer.sees_contacts_of(rec.organisation_id):
            continue
        else:
            out[name] = _json(getattr(rec, name))
    return out


def organisation_names(ids: Iterable[int | None]) -> dict[int, str]:
    from web.extensions import directory

    return directory().organisation_names(ids)


def records(recs: list[Demand | Achievement], viewer: Viewer) -> list[dict[str, Any]]:
    names = organisation_names(r.organisation_id for r in recs)
    return [record(r, viewer, names) for r in recs]


def results(found: list[MatchResult], key: str, viewer: Viewer) -> list[dict[str, Any]]:
    """Match or search results, in rank order, each with its record under ``key``."""
    names = organisation_names(r.record.organisation_id for r in found)
    return [{key: record(r.record, viewer, names), "score": float(r.score),
             "strength": float(r.strength), "good": bool(r.good),
             "breakdown": _json(r.breakdown), "explanation": _json(r.explanation)} for r in found]


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        # SQLite hands back naive datetimes; they were written as UTC.
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars in breakdowns
        return value.item()
    if isinstance(value, str):
        return str(value)  # plain str for StrEnum members
    return value
