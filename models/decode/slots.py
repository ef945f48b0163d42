"""Who is in a batch: the slot table (slot <-> buffer row, and when each stream leaves), and the
prefix cache of primed seed texts."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from models.decode.processors import History
from models.decode.state import Clamp
from models.decode.stream import Stream

# Primed seed texts a batch remembers (vLLM's prefix caching, for whole seed texts): priming costs a
# short prompt about as much as a whole step of 32 streams, and clients mostly repeat their prompts.
# An entry is one state, (V + 2 * L * H) floats.
PRIMED_CACHE_SIZE = 256


@dataclass(eq=False)
class Active:
    """One stream in a batch: its slot, and how far it has come."""

    slot: int
    stream: Stream
    uniforms: torch.Tensor | None  # (length,) on the device; None for greedy (its uniforms stay 0)
    joined_at: int  # the batch step that draws its first character
    history: History | None = None  # what its penalties read; None without penalties
    clamps: tuple[Clamp, ...] = ()  # held on its cell units (models/decode/state.py)
    keep_state: bool = False  # its state goes to the batch's `last_states` when it leaves

    @property
    def leaves_after(self) -> int:
        """The batch step after which it has all its characters."""
        return self.joined_at + self.stream.length


class SlotTable:
    """Slots, rows and leaving times of up to `capacity` streams.

    A stream keeps its slot (an int in [0, capacity), the lowest free one) from `join` until it
    leaves; freed slots are reused. Its row is its index in `active`, kept compact (rows 0..n-1): when
    a row leaves, the last one takes its place, and `leave` says so, for the caller to move the row's
    memory along.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.active: list[Active] = []  # by row
        self._row_of_slot: dict[int, int] = {}
        self._free_slots = list(range(capacity - 1, -1, -1))  # pop() hands out the lowest
        self._leaving: dict[int, list[Active]] = {}  # by the step after which they are done

    def __len__(self) -> int:
        return len(self.active)

    def __contains__(self, slot: object) -> bool:
        return slot in self._row_of_slot

    @property
    def is_full(self) -> bool:
        return not self._free_slots

    def row_of(self, slot: int) -> int:
        return self._row_of_slot[slot]

    def join(
        self, stream: Stream, uniforms: torch.Tensor | None, step: int, history: History | None = None
    ) -> tuple[int, Active]:
        """Give `stream` the lowest free slot and the next row: (row, its entry)."""
        if not self._free_slots:
            raise RuntimeError(f"the batch is full ({self.capacity} streams)")
        row, slot = len(self.active), self._free_slots.pop()
        active = Active(slot, stream, uniforms, joined_at=step, history=history)
        self.active.append(active)
        self._row_of_slot[slot] = row
        self._leaving.setdefault(active.leaves_after, []).append(active)
        return row, active

    def leave(self, slot: int) -> tuple[Active, int, int | None]:
        """Free `slot`: (its entry, its row, the row that moved into it or None)."""
        if slot not in self._row_of_slot:
            raise KeyError(f"slot {slot} holds no stream")
        row, last = self._row_of_slot.pop(slot), len(self.active) - 1
        active = self.active[row]
        moved = None
        if row != last:  # keep rows 0..n-1 compact: the last row takes the freed one
            moved = last
            self.active[row] = self.active[last]
            self._row_of_slot[self.active[row].slot] = row
        self.active.pop()
        self._free_slots.append(slot)
        leaving = self._leaving.get(active.leaves_after)
        if leaving is not None:
            leaving.remove(active)
        return active, row, moved

    def leaving_after(self, step: int) -> list[Active]:
        """The streams that have all their characters once `step` is done."""
        return self._leaving.pop(step, [])


class PrefixCache:
    """The state after each of the latest `size` seed texts (h | c | next logits), least recent out
    first. Priming is deterministic, so a hit is exactly what priming again would give."""

    def __init__(self, size: int | None = None) -> None:
        self.size = PRIMED_CACHE_SIZE if size is None else size
        self._states: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def __iter__(self) -> Iterator[str]:
        """The seed texts, least recently used first."""
        return iter(self._states)

    def get(self, seed_text: str, prime: Callable[[str], torch.Tensor]) -> torch.Tensor:
        """The cached state after `seed_text` (read-only), or `prime(seed_text)`'s, then cached."""
        state = self._states.get(seed_text)
        if state is None:
            state = self._states[seed_text] = prime(seed_text)
            if len(self._states) > self.size:
                self._states.popitem(last=False)
        else:
            self._states.move_to_end(seed_text)
        return state
