"""Who may see and change what: one rule, read in Python and compiled to SQL.

A record is public unless it is a confidential demand; a confidential demand is
seen only by its own organisation and by brokers (and the system).  A deleted
record is seen by nobody but brokers and the system (its matches, calls and
audit trail keep pointing at it).  Records are changed by their own
organisation and by brokers.

The rule is written once, in :func:`_rule`, over "fields" that are either a
record (the rule then evaluates to a bool) or a table class (it then builds a
SQL expression): every list, search, ranking, stored match and statistic uses
it, so no reader can forget it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import true

from matcher.models import Role


@dataclass(frozen=True)
class Viewer:
    """The person (or system) asking.  ``Viewer.internal()`` sees everything."""

    user_id: int | None = None
    organisation_id: int | None = None
    role: str | None = None
    system: bool = False

    @classmethod
    def anonymous(cls) -> Viewer:
        return cls()

    @classmethod
    def internal(cls) -> Viewer:
        return cls(system=True)

    @property
    def is_broker(self) -> bool:
        return self.system or self.role == Role.broker.value

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin.value

    def sees_confidential_of(self, organisation_id: int) -> bool:
        return self.is_broker or (
            self.organisation_id is not None and self.organisation_id == organisation_id
        )

    def can_see(self, record: Any) -> bool:
        """May this viewer see the record (a demand or an achievement)?"""
        cond = _rule(self, record, _confidential_side(record))
        return True if cond is None else bool(cond)

    # kept for readability at call sites that only ever hold demands
    can_see_demand = can_see

    def sees_contacts_of(self, organisation_id: int) -> bool:
        """Contact details: the record's own organisation and brokers."""
        return self.is_broker or (self.organisation_id is not None
                                  and self.organisation_id == organisation_id)

    def owns(self, record: Any) -> bool:
        """May this viewer change the record?  Its own organisation and brokers."""
        if self.is_broker:
            return True
        return self.organisation_id is not None and self.organisation_id == record.organisation_id


def _confidential_side(record_or_table: Any) -> bool:
    return hasattr(record_or_table, "confidential")


def _rule(viewer: Viewer, c: Any, confidential_side: bool) -> Any:
    """The visibility rule over ``c``: a record (-> bool) or a table (-> SQL).

    Returns None when nothing is hidden from this viewer on this side.
    """
    if viewer.is_broker:
        return None
    own = (c.organisation_id == viewer.organisation_id) if viewer.organisation_id is not None else False
    alive = c.deleted_at == None  # noqa: E711 - a SQL expression for tables, a bool for records
    if not confidential_side:
        return alive
    public = c.confidential == False  # noqa: E712
    return alive & (public | own)


def visible(viewer: Viewer, table: Any) -> Any:
    """The visibility rule as a SQL condition on ``table`` (true() when nothing is hidden)."""
    cond = _rule(viewer, table, _confidential_side(table))
    return true() if cond is None else cond
