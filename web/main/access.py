"""Who may create, edit and read what on the portal's record pages."""

from __future__ import annotations

from matcher.models import Demand, Role, Side
from matcher.visibility import Viewer

# The role whose members post records of each side for their own organisation.
OWNER_ROLE = {Side.demand: Role.enterprise.value, Side.achievement: Role.institution.value}


def can_create(user, side: Side) -> bool:
    """Enterprises post demands and institutions achievements, for their own organisation;
    brokers post either side on behalf of an organisation."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.has_role(Role.broker):
        return True
    return user.has_role(OWNER_ROLE[side]) and user.organisation_id is not None


def can_edit(user, record) -> bool:
    """The record's own organisation and brokers may edit or delete it."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.has_role(Role.broker):
        return True
    return user.organisation_id is not None and user.organisation_id == record.organisation_id


def can_see_contacts(viewer: Viewer, demand: Demand) -> bool:
    """A demand's contact details: its own organisation and brokers.

    Hook: an accepted match (a later issue) will also open them to the
    matched achievement's organisation; add that rule here, in one place.
    """
    return viewer.sees_contacts_of(demand.organisation_id)
