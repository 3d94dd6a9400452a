"""Who may see what: confidential demands stay with their organisation and brokers."""

from __future__ import annotations

from dataclasses import dataclass

from matcher.models import Demand, Role


@dataclass(frozen=True)
class Viewer:
    """The person (or system) asking.  ``Viewer.system()`` sees everything."""

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

    def sees_confidential_of(self, organisation_id: int) -> bool:
        return self.is_broker or (
            self.organisation_id is not None and self.organisation_id == organisation_id
        )

    def can_see_demand(self, demand: Demand) -> bool:
        return not demand.confidential or self.sees_confidential_of(demand.organisation_id)

    def sees_contacts_of(self, organisation_id: int) -> bool:
        return self.is_broker or self.organisation_id == organisation_id
