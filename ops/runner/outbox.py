"""The runner's SQLite file: outbox, seen-nonce cache and job journal.

Every log chunk and result is written here before it is sent and stays until
Core acknowledges it, so a reconnect (or a restart) replays what Core may not
have. The seen-nonce cache makes a replayed job refusable after a restart; the
journal notes which jobs were started, so a job interrupted by a crash is
reported ``lost`` instead of being run again.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from shared.private_files import private_sqlite_file

#: Seconds a seen nonce is kept after its job's ``not_after`` (past it the job is refused as expired anyway).
NONCE_MARGIN_SECONDS = 600
#: Seconds a finished job's journal row and acknowledged result are kept, for redeliveries.
FINISHED_KEEP_SECONDS = 24 * 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('log', 'result')),
    body BLOB NOT NULL,
    acked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS seen_nonce (
    nonce TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    not_after INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    job_id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('accepted', 'finished')),
    nonce TEXT,
    pgid INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    last_seq INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class Item:
    """One outbox item: a serialized LogChunk (kind "log") or JobResult (kind "result")."""

    job_id: str
    seq: int
    kind: str
    body: bytes
    acked: bool


@dataclass(frozen=True)
class JournalEntry:
    """What the runner knows about a job it accepted (or refused)."""

    job_id: str
    state: str
    nonce: str | None
    pgid: int | None
    started_at: int | None
    last_seq: int


class Outbox:
    """The runner's SQLite file (WAL, 0600); one connection, used from the agent's event loop."""

    def __init__(self, path: Path) -> None:
        private_sqlite_file(path)
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        # WAL + NORMAL survives a killed process (not a power cut) at a fraction of FULL's fsyncs.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def _write(self, statements: list[tuple[str, tuple[object, ...]]]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for sql, parameters in statements:
                self._db.execute(sql, parameters)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # Journal and seen nonces.
    def journal(self, job_id: str) -> JournalEntry | None:
        """The journal row of ``job_id``, if the runner has seen it."""
        row = self._db.execute(
            "SELECT job_id, state, nonce, pgid, started_at, last_seq FROM journal WHERE job_id = ?",
            (job_id,),
        ).fetchone()
        return JournalEntry(*row) if row else None

    def unfinished(self) -> list[JournalEntry]:
        """Jobs accepted but never finished (the runner died while they ran)."""
        rows = self._db.execute(
            "SELECT job_id, state, nonce, pgid, started_at, last_seq FROM journal "
            "WHERE state = 'accepted' ORDER BY job_id"
        ).fetchall()
        return [JournalEntry(*row) for row in rows]

    def nonce_owner(self, nonce: str) -> str | None:
        """The job id a nonce was seen with, if any."""
        row = self._db.execute("SELECT job_id FROM seen_nonce WHERE nonce = ?", (nonce,)).fetchone()
        return row[0] if row else None

    def accept(self, job_id: str, nonce: str, not_after: int, started_at_ms: int) -> None:
        """Journal a job as accepted and remember its nonce, in one transaction."""
        self._write(
            [
                (
                    "INSERT INTO seen_nonce (nonce, job_id, not_after) VALUES (?, ?, ?)",
                    (nonce, job_id, not_after),
                ),
                (
                    "INSERT INTO journal (job_id, state, nonce, started_at) "
                    "VALUES (?, 'accepted', ?, ?)",
                    (job_id, nonce, started_at_ms),
                ),
            ]
        )

    def set_pgid(self, job_id: str, pgid: int) -> None:
        """Note the process group a job runs in, to kill it after a crash."""
        self._write([("UPDATE journal SET pgid = ? WHERE job_id = ?", (pgid, job_id))])

    # Outbox.
    def add_log(self, job_id: str, seq: int, body: bytes) -> None:
        """Store log chunk ``seq`` of a job (before it is sent)."""
        self._write(
            [
                (
                    "INSERT INTO outbox (job_id, seq, kind, body) VALUES (?, ?, 'log', ?)",
                    (job_id, seq, body),
                ),
                ("UPDATE journal SET last_seq = ? WHERE job_id = ?", (seq, job_id)),
            ]
        )

    def finish(
        self, job_id: str, seq: int, body: bytes, finished_at_ms: int, nonce: str | None = None
    ) -> None:
        """Store a job's result (seq = last log seq + 1) and journal it finished, in one transaction.

        A job never accepted (a refusal) gets its journal row here.
        """
        self._write(
            [
                (
                    "INSERT INTO outbox (job_id, seq, kind, body) VALUES (?, ?, 'result', ?)",
                    (job_id, seq, body),
                ),
                (
                    "INSERT INTO journal (job_id, state, nonce, finished_at, last_seq) "
                    "VALUES (?, 'finished', ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET "
                    "state = 'finished', finished_at = excluded.finished_at",
                    (job_id, nonce, finished_at_ms, seq - 1),
                ),
            ]
        )

    def ack(self, job_id: str, seq: int) -> None:
        """Core stored item (job_id, seq): a log chunk is dropped, a result kept for redeliveries."""
        self._write(
            [
                ("DELETE FROM outbox WHERE job_id = ? AND seq = ? AND kind = 'log'", (job_id, seq)),
                ("UPDATE outbox SET acked = 1 WHERE job_id = ? AND seq = ?", (job_id, seq)),
            ]
        )

    def unacked(self, job_id: str | None = None) -> list[Item]:
        """Items Core has not acknowledged, in (job_id, seq) order; of one job when given."""
        sql = "SELECT job_id, seq, kind, body, acked FROM outbox WHERE acked = 0"
        parameters: tuple[object, ...] = ()
        if job_id is not None:
            sql += " AND job_id = ?"
            parameters = (job_id,)
        rows = self._db.execute(sql + " ORDER BY job_id, seq", parameters).fetchall()
        return [Item(r[0], r[1], r[2], bytes(r[3]), bool(r[4])) for r in rows]

    def result(self, job_id: str) -> Item | None:
        """A job's stored result, acknowledged or not."""
        row = self._db.execute(
            "SELECT job_id, seq, kind, body, acked FROM outbox WHERE job_id = ? AND kind = 'result'",
            (job_id,),
        ).fetchone()
        return Item(row[0], row[1], row[2], bytes(row[3]), bool(row[4])) if row else None

    def prune(self, now_s: float) -> None:
        """Forget expired nonces and old finished jobs whose result Core has."""
        cutoff_ms = int((now_s - FINISHED_KEEP_SECONDS) * 1000)
        self._write(
            [
                (
                    "DELETE FROM seen_nonce WHERE not_after < ?",
                    (int(now_s) - NONCE_MARGIN_SECONDS,),
                ),
                (
                    "DELETE FROM outbox WHERE acked = 1 AND job_id IN (SELECT job_id FROM journal "
                    "WHERE state = 'finished' AND finished_at < ?)",
                    (cutoff_ms,),
                ),
                (
                    "DELETE FROM journal WHERE state = 'finished' AND finished_at < ? AND job_id "
                    "NOT IN (SELECT job_id FROM outbox)",
                    (cutoff_ms,),
                ),
            ]
        )
