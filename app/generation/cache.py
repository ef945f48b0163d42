"""The checkpoints the API keeps loaded: an LRU of models, each text model with its decode engine.

Everything here runs on the event loop, so the LRU needs no lock. A checkpoint that is not loaded
is read from the database and unpickled in a thread, under a per-checkpoint future: concurrent
first requests for it wait on that one load, and requests for other checkpoints (and their
engines' streams) never wait for it.
"""

from __future__ import annotations

import asyncio
import gc
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.generation.engine import Engine


@dataclass(frozen=True)
class LoadedModel:
    checkpoint_id: int
    task: str
    model: Any  # torch.nn.Module in eval mode, on the CPU
    vocab: Any  # models.data.Vocabulary | None
    train_config: dict[str, Any]
    engine: Engine | None  # text models only


class ModelCache:
    """The last `size` used checkpoints by id. An evicted engine finishes its streams, then stops."""

    def __init__(
        self,
        size: int,
        *,
        max_batch: int,
        max_waiting: int,
        native_decode: bool = True,
        stream_interval_s: float = 0.0,
    ) -> None:
        self.size = size
        self.max_batch, self.max_waiting = max_batch, max_waiting
        self.native_decode = native_decode  # False: the engines never use the native step
        self.stream_interval_s = stream_interval_s  # the engines' least time between two stream events
        self._models: OrderedDict[int, LoadedModel] = OrderedDict()
        self._loading: dict[int, asyncio.Future[LoadedModel]] = {}
        # The load tasks, referenced so they are not garbage-collected while they run.
        self._tasks: set[asyncio.Task[None]] = set()

    def __contains__(self, checkpoint_id: object) -> bool:
        return checkpoint_id in self._models

    def engines(self) -> list[Engine]:
        return [m.engine for m in self._models.values() if m.engine is not None]

    async def get(self, checkpoint_id: int, read: Callable[[], dict[str, Any]]) -> LoadedModel:
        """The loaded checkpoint; `read()` (blocking: a database read and torch.load, run in a thread)
        gives its checkpoint dict when it is not loaded yet."""
        loaded = self._models.get(checkpoint_id)
        if loaded is not None:
            self._models.move_to_end(checkpoint_id)
            return loaded
        future = self._loading.get(checkpoint_id)
        if future is None:
            future = self._loading[checkpoint_id] = asyncio.get_running_loop().create_future()
            # A task of its own: a caller that goes away must not cancel the load the others await.
            task = asyncio.create_task(self._load(checkpoint_id, read, future))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(future)

    async def _load(
        self, checkpoint_id: int, read: Callable[[], dict[str, Any]], future: asyncio.Future[LoadedModel]
    ) -> None:
        try:
            loaded = await asyncio.to_thread(self._build, checkpoint_id, read)
        except Exception as exc:
            future.set_exception(exc)
        else:
            self._models[checkpoint_id] = loaded
            while len(self._models) > self.size:
                _, evicted = self._models.popitem(last=False)
                if evicted.engine is not None:
                    evicted.engine.close()
            future.set_result(loaded)
        finally:
            del self._loading[checkpoint_id]
        # Nobody may await it (every caller went away): retrieve the exception so asyncio does not log it.
        if future.done() and not future.cancelled():
            future.exception()

    def _build(self, checkpoint_id: int, read: Callable[[], dict[str, Any]]) -> LoadedModel:
        from models.char_lstm import CharLSTM
        from models.checkpoint import load_model, load_vocabulary
        from models.decode.fused import FusedCharLSTM

        ckpt = read()
        model, vocab = load_model(ckpt), load_vocabulary(ckpt)
        engine = None
        if ckpt["task"] == "text":
            assert isinstance(model, CharLSTM) and vocab is not None  # what a text checkpoint holds
            engine = Engine(
                checkpoint_id,
                FusedCharLSTM(model),
                vocab,
                max_batch=self.max_batch,
                max_waiting=self.max_waiting,
                stream_interval_s=self.stream_interval_s,
                native=None if self.native_decode else False,
            )
        # What loading brought (torch's modules at the first load) and everything before it lives as
        # long as the server: out of the collector's sight, a full collection walks only what requests
        # made since. Before, one walked the ~300k objects in 120-180 ms, on whichever thread
        # allocated, every few thousand requests: the p99 of every generation then.
        gc.freeze()
        return LoadedModel(checkpoint_id, ckpt["task"], model, vocab, dict(ckpt["train_config"]), engine)
