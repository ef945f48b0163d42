"""Datasets: uploaded corpora and the built-in one, stored as text in the database."""

from __future__ import annotations

from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.errors import DatasetNotFound, DatasetTooLarge, InvalidInput
from app.core.tables import Dataset
from app.schemas.resources import DatasetOut, DatasetSummary
from app.services.builtin import BUILTIN_NAME, builtin_corpus

PREVIEW_CHARS = 500
READ_CHUNK = 1024 * 1024


def read_limited(stream: BinaryIO, limit: int) -> bytes:
    """Read at most `limit` bytes, in chunks; one byte more raises DatasetTooLarge."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise DatasetTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def create_dataset(session: Session, *, name: str, raw: bytes, strip_gutenberg: bool) -> Dataset:
    from models.corpus import CorpusError, decode_corpus  # torch: only on the upload path

    try:
        text = decode_corpus(raw, strip_gutenberg=strip_gutenberg)
    except CorpusError as exc:
        raise InvalidInput(("body", "file"), str(exc)) from exc
    if not text:
        raise InvalidInput(("body", "file"), "the file is empty")
    # PostgreSQL text columns cannot hold NUL; a corpus with one is binary data, not text.
    if "\x00" in text:
        raise InvalidInput(
            ("body", "file"), f"NUL character at character {text.index(chr(0))}: not a text file"
        )
    if "\x00" in name:
        raise InvalidInput(("body", "name"), "the name contains a NUL character")
    return _store(session, name=name, text=text, size_bytes=len(raw), builtin=False)


def _store(session: Session, *, name: str, text: str, size_bytes: int, builtin: bool) -> Dataset:
    dataset = Dataset(
        name=name,
        text=text,
        characters=len(text),
        vocab="".join(sorted(set(text))),
        size_bytes=size_bytes,
        builtin=builtin,
    )
    session.add(dataset)
    session.commit()
    return dataset


def ensure_builtin(session: Session) -> Dataset:
    """The built-in dataset; the migration creates it, this re-creates it if someone deleted it."""
    dataset = session.scalars(select(Dataset).where(Dataset.builtin.is_(True)).order_by(Dataset.id)).first()
    if dataset is None:
        name, text = builtin_corpus()
        size = len(text.encode("utf-8"))
        dataset = _store(session, name=name or BUILTIN_NAME, text=text, size_bytes=size, builtin=True)
    return dataset


def get_dataset(session: Session, dataset_id: int) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise DatasetNotFound(dataset_id)
    return dataset


def list_datasets(session: Session) -> list[DatasetSummary]:
    # Only the metadata columns: the texts can be megabytes each.
    summaries = select(
        Dataset.id,
        Dataset.name,
        Dataset.characters,
        func.length(Dataset.vocab).label("vocab_size"),
        Dataset.size_bytes,
        Dataset.builtin,
        Dataset.created_at,
    )
    rows = session.execute(summaries.order_by(Dataset.id)).all()
    return [DatasetSummary.model_validate(row._mapping) for row in rows]


def dataset_out(dataset: Dataset) -> DatasetOut:
    return DatasetOut(
        id=dataset.id,
        name=dataset.name,
        characters=dataset.characters,
        vocab_size=len(dataset.vocab),
        size_bytes=dataset.size_bytes,
        builtin=dataset.builtin,
        created_at=dataset.created_at,
        preview=dataset.text[:PREVIEW_CHARS],
    )
