"""Integers that reach a database column, bounded to what the column stores.

Ids, steps and offsets are `Integer` columns: 32-bit signed on PostgreSQL. A larger value that got
past the schema would fail inside the database driver (a 500); bounded here it is a 422 naming the
field. Every route parameter and body field that is compared with such a column uses these types.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

INT32_MAX = 2**31 - 1

DbId = Annotated[int, Field(ge=1, le=INT32_MAX)]
DbOffset = Annotated[int, Field(ge=0, le=INT32_MAX)]
# A step to page on from: -1 means before the first step.
DbStep = Annotated[int, Field(ge=-1, le=INT32_MAX)]
