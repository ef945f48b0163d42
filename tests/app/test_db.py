"""app/core/db.py on SQLite: how its transactions begin."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from app.core.db import begin_reading, make_engine


def test_a_reader_reads_while_another_transaction_holds_the_write_lock(tmp_path: Path) -> None:
    # A session row read must not queue behind another request's commit (its fsync): a reader's
    # transaction begins DEFERRED and reads the last committed snapshot; an ordinary one waits for the
    # write lock (here past a short busy timeout).
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", busy_timeout_s=0.2)
    sessions = sessionmaker(engine)
    with sessions() as setup:
        setup.execute(text("CREATE TABLE t (n INTEGER)"))
        setup.execute(text("INSERT INTO t VALUES (1)"))
        setup.commit()
    with sessions() as writer:
        writer.execute(text("UPDATE t SET n = 2"))  # BEGIN IMMEDIATE: the write lock, held from here
        with sessions() as reader:
            begin_reading(reader)
            assert reader.scalar(text("SELECT n FROM t")) == 1
        with sessions() as other, pytest.raises(OperationalError, match="locked"):
            other.scalar(text("SELECT n FROM t"))
        writer.commit()
    with sessions() as reader:
        begin_reading(reader)
        assert reader.scalar(text("SELECT n FROM t")) == 2
    engine.dispose()
