"""The session records this server last read or committed, so that a change can skip its read.

Every change of a session (append, generate, clamp) reads the row, computes, then writes conditioned on
the version it read (session_store.apply_all_*). A client that works a session request after request through
one server finds here the record that server committed last: the request starts without a database
read (at one client that read was about a tenth of a 200-character generation).

What makes a remembered record safe to start from is the write's version condition, not the memory:
if another process (a second API replica) changed or deleted the session meanwhile, the write changes
nothing and the service reads the row afresh and runs the request again (sessions.py). Reads that
answer without writing (GET, list, fork) always read the database.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import timedelta

from app.core.tables import utcnow
from app.services.session_store import SessionRecord

# Records remembered per server, least recently used dropped first. A record is its state and a
# few fields: 2 KB for a 2 x 128 LSTM, 24 KB for a 3 x 1024 one (48 MB at this bound).
MAX_RECORDS = 2048


class RecentSessions:
    """The newest record this server knows of each recently used session (one per app: main.py)."""

    def __init__(self) -> None:
        self._records: OrderedDict[str, SessionRecord] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str, *, owner: str, idle_s: float) -> SessionRecord | None:
        """The remembered record, if it is the caller's and not idle past `idle_s` (else None: the
        database decides, and deletes an expired one)."""
        with self._lock:
            record = self._records.get(session_id)
            if record is None:
                return None
            if record.owner != owner or record.last_used_at < utcnow() - timedelta(seconds=idle_s):
                return None
            self._records.move_to_end(session_id)
            return record

    def put(self, record: SessionRecord) -> None:
        """Remember `record` unless the same or a newer version of it is remembered already (a
        concurrent change of the same session committed first; a read found what is remembered)."""
        with self._lock:
            held = self._records.get(record.id)
            if held is not None and held.version >= record.version:
                return
            self._records[record.id] = record
            self._records.move_to_end(record.id)
            while len(self._records) > MAX_RECORDS:
                self._records.popitem(last=False)

    def holds(self, record: SessionRecord) -> bool:
        """Whether `record` is still what is remembered: nothing in this process changed it since."""
        with self._lock:
            return self._records.get(record.id) is record

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._records.pop(session_id, None)
