"""Text generation and palindrome prediction from stored checkpoints, with an LRU of loaded models."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from sqlalchemy.orm import Session

from app.errors import InvalidInput, WrongTask
from app.observability import observe_generation
from app.schemas import GenerateOut, GenerateParams, PredictIn, PredictOut, Timings
from app.services import checkpoints


@dataclass(frozen=True)
class LoadedModel:
    checkpoint_id: int
    task: str
    model: Any  # torch.nn.Module in eval mode, on the CPU
    vocab: Any  # models.data.Vocabulary | None
    train_config: dict[str, Any]


class ModelCache:
    """The last `size` loaded checkpoints by id, so repeated generation does not reload them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._models: OrderedDict[int, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: Session, checkpoint_id: int) -> tuple[LoadedModel, bool]:
        """(model, loaded now?)"""
        with self._lock:
            if checkpoint_id in self._models:
                self._models.move_to_end(checkpoint_id)
                return self._models[checkpoint_id], False
        loaded = _load(session, checkpoint_id)
        with self._lock:
            self._models[checkpoint_id] = loaded
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return loaded, True


def _load(session: Session, checkpoint_id: int) -> LoadedModel:
    from models.checkpoint import from_bytes, load_model, load_vocabulary

    row = checkpoints.get_checkpoint(session, checkpoint_id, with_data=True)
    ckpt = from_bytes(row.data)
    return LoadedModel(
        checkpoint_id, row.task, load_model(ckpt), load_vocabulary(ckpt), dict(ckpt["train_config"])
    )


def generate(
    session: Session, cache: ModelCache, params: GenerateParams, *, source: str = "query"
) -> GenerateOut:
    """`source` ("query" or "body") is where the parameters came from, for error locations."""
    from models.sample import UnknownCharacters
    from models.sample import generate as sample

    start = perf_counter()
    checkpoint_id = checkpoints.resolve(session, checkpoint_id=params.checkpoint_id, job_id=params.job_id)
    loaded, _ = cache.get(session, checkpoint_id)
    session.close()  # release the connection (and SQLite's lock) before the CPU-bound part
    if loaded.task != "text":
        raise WrongTask(
            f"checkpoint {checkpoint_id} is a {loaded.task} model: "
            "this model predicts digits; use POST /predict"
        )
    loaded_at = perf_counter()
    try:
        result = sample(
            loaded.model,
            loaded.vocab,
            params.seed,
            params.length,
            temperature=params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            random_seed=params.random_seed,
        )
    except UnknownCharacters as exc:
        raise InvalidInput((source, "seed"), str(exc)) from exc
    done = perf_counter()
    observe_generation(len(result.text), done - loaded_at)
    return GenerateOut(
        text=result.text,
        checkpoint_id=checkpoint_id,
        seed=params.seed,
        length=params.length,
        temperature=params.temperature,
        top_k=params.top_k,
        top_p=params.top_p,
        random_seed=result.random_seed,
        timings=Timings(
            load_ms=(loaded_at - start) * 1000,
            generate_ms=(done - loaded_at) * 1000,
            total_ms=(done - start) * 1000,
        ),
    )


def predict(session: Session, cache: ModelCache, body: PredictIn) -> PredictOut:
    from models.sample import predict_palindrome

    checkpoint_id = checkpoints.resolve(session, checkpoint_id=body.checkpoint_id, job_id=body.job_id)
    loaded, _ = cache.get(session, checkpoint_id)
    session.close()
    if loaded.task != "palindrome":
        raise WrongTask(f"checkpoint {checkpoint_id} is a {loaded.task} model; use GET /generate")
    expected = loaded.train_config["input_length"]
    if len(body.digits) != expected:
        raise InvalidInput(("body", "digits"), f"this model reads {expected} digits, got {len(body.digits)}")
    digit, probabilities = predict_palindrome(
        loaded.model, body.digits, loaded.train_config["input_encoding"]
    )
    return PredictOut(
        checkpoint_id=checkpoint_id, digits=body.digits, predicted_digit=digit, probabilities=probabilities
    )
