"""The jobs that follow writes (see :mod:`matcher.jobs`): keep the stored match lists current,
then raise the alerts of a new record.  Each is idempotent."""

from __future__ import annotations

import logging
from typing import Any

from matcher.jobs import handler
from matcher.models import Side

log = logging.getLogger(__name__)
BULK_REBUILD_SHARE = 0.2  # a bulk write this large a share of the side: recompute every list


@handler("record.written")
def record_written(service: Any, payload: dict[str, Any]) -> None:
    """A record was created, changed or deleted: its list, the lists it enters or leaves,
    the lists a new statistics snapshot made stale, and (for a new record) its alerts."""
    side, record_id = Side(payload["side"]), int(payload["record_id"])
    service.store.refresh(side, record_id)
    service.store.follow_snapshots()
    if payload.get("event") == "created":
        from matcher.alerts import process_new_record

        process_new_record(service, side, record_id, mail=getattr(service, "mail", None))


@handler("records.bulk")
def records_bulk(service: Any, payload: dict[str, Any]) -> None:
    """Many records were created at once (seeds, an import batch)."""
    side, ids = Side(payload["side"]), [int(i) for i in payload["record_ids"]]
    total = service.count(side)
    if ids and total and len(ids) >= BULK_REBUILD_SHARE * total:
        service.store.follow_snapshots()
        service.store.verify()
    else:
        for record_id in ids:
            service.store.refresh(side, record_id)
        service.store.follow_snapshots()
    if payload.get("alerts"):
        from matcher.alerts import process_new_record

        for record_id in ids:
            process_new_record(service, side, record_id, mail=getattr(service, "mail", None))
