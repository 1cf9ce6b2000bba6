"""The SQLite file format: its version, the schema of each version, the migrations.

The format version is SQLite's ``PRAGMA user_version``.  Version 0 is the format
before versioning (hpcore 0.1: no ``user_version``, no heartbeats, no stored sampler
or pruner, no retry queue).  Opening a file migrates it, in one ``BEGIN IMMEDIATE``
transaction, step by step to :data:`CURRENT_VERSION`; a file of a newer version is
refused with :class:`StorageVersionError` (an older hpcore must not write a format it
does not know).  Every step only adds (columns, tables, indexes): a migrated file still
opens in the release that wrote it.
"""
from __future__ import annotations

import sqlite3

__all__ = ["CURRENT_VERSION", "StorageVersionError", "file_version", "check_version",
           "initialize", "has_column"]

#: The format this release writes.
CURRENT_VERSION = 1

# Version 0: the tables of hpcore 0.1, kept verbatim (a fresh file is made as v0 and
# migrated, so a new file and a migrated file are the same by construction).
_V0 = """
CREATE TABLE IF NOT EXISTS studies (
    study_id   INTEGER PRIMARY KEY,
    name       TEXT UNIQUE NOT NULL,
    directions TEXT NOT NULL,
    space      TEXT,
    seq        INTEGER NOT NULL DEFAULT 0,
    n_trials   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS trials (
    trial_id          INTEGER PRIMARY KEY,
    study_id          INTEGER NOT NULL REFERENCES studies(study_id),
    number            INTEGER NOT NULL,
    state             INTEGER NOT NULL,
    params            TEXT NOT NULL DEFAULT '{}',
    vals              TEXT,
    datetime_start    REAL,
    datetime_complete REAL,
    user_attrs        TEXT NOT NULL DEFAULT '{}',
    system_attrs      TEXT NOT NULL DEFAULT '{}',
    error             TEXT,
    seq               INTEGER NOT NULL,
    UNIQUE (study_id, number)
);
CREATE INDEX IF NOT EXISTS trials_by_seq ON trials(study_id, seq);
CREATE TABLE IF NOT EXISTS reports (
    trial_id INTEGER NOT NULL REFERENCES trials(trial_id),
    study_id INTEGER NOT NULL,
    number   INTEGER NOT NULL,
    step     INTEGER NOT NULL,
    value    REAL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (trial_id, step)
);
CREATE INDEX IF NOT EXISTS reports_by_seq ON reports(study_id, seq);
"""

# v0 -> v1: heartbeats (+ a partial index over RUNNING trials, so the stale sweep reads
# only RUNNING rows), the study's sampler and pruner (JSON), and the retry queue.
_V1 = """
ALTER TABLE trials ADD COLUMN heartbeat REAL;
UPDATE trials SET heartbeat = datetime_start WHERE state = 0;
CREATE INDEX IF NOT EXISTS trials_running ON trials(study_id, heartbeat) WHERE state = 0;
ALTER TABLE studies ADD COLUMN sampler TEXT;
ALTER TABLE studies ADD COLUMN pruner TEXT;
CREATE TABLE IF NOT EXISTS queue (
    queue_id     INTEGER PRIMARY KEY,
    study_id     INTEGER NOT NULL REFERENCES studies(study_id),
    params       TEXT NOT NULL,
    system_attrs TEXT NOT NULL DEFAULT '{}',
    budget       REAL,
    created      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_by_study ON queue(study_id, budget, queue_id);
"""

#: ``_MIGRATIONS[v]`` takes a file from version ``v`` to ``v + 1``.
_MIGRATIONS = {0: _V1}


class StorageVersionError(ValueError):
    """The file was written by a newer hpcore (its format version is unknown here)."""


def file_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'studies'"
                        ).fetchone() is not None


def has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return any(r[1] == column for r in conn.execute(f"PRAGMA table_info({table})"))


def check_version(conn: sqlite3.Connection, path: str) -> int:
    """The file's version; :class:`StorageVersionError` when it is newer than this release."""
    v = file_version(conn)
    if v > CURRENT_VERSION:
        from hpcore._config import __version__

        raise StorageVersionError(
            f"storage: {path!r} has file format version {v}, newer than the version "
            f"{CURRENT_VERSION} this hpcore ({__version__}) reads and writes; open it with a "
            "newer hpcore (nothing was changed)")
    return v


def initialize(conn: sqlite3.Connection, path: str) -> int:
    """Create the schema of a new file, or migrate an old one, to :data:`CURRENT_VERSION`.

    Runs in one ``BEGIN IMMEDIATE`` transaction (the caller retries on a busy lock), so
    processes opening the same old file at once migrate it exactly once.  Returns the
    version the file had.
    """
    if check_version(conn, path) == CURRENT_VERSION and _has_tables(conn):
        return CURRENT_VERSION          # the common case: no write lock taken
    conn.execute("BEGIN IMMEDIATE")
    try:
        v = check_version(conn, path)   # re-read under the lock: another process may have won
        if not _has_tables(conn):
            _run(conn, _V0)
            v = 0
        start = v
        while v < CURRENT_VERSION:
            _run(conn, _MIGRATIONS[v])
            v += 1
        conn.execute(f"PRAGMA user_version = {CURRENT_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return start


def _run(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT the open transaction first: run statement by statement.
    for stmt in script.split(";"):
        if stmt.strip():
            conn.execute(stmt)
