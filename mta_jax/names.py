"""Looking a name up in a table of named things, with a did-you-mean on a typo."""

from __future__ import annotations

import difflib
from typing import Iterable, Mapping, TypeVar

V = TypeVar("V")


def did_you_mean(value, options: Iterable) -> str:
  """`` (did you mean 'x'?)`` for the closest of ``options``, or ``""``."""
  hint = difflib.get_close_matches(str(value), [str(o) for o in options], n=1)
  return f" (did you mean {hint[0]!r}?)" if hint else ""


def lookup(table: Mapping[str, V], name: str, key: str) -> V:
  """``table[name]``; an unknown name raises ``ValueError`` naming the config ``key``, the known
  names and the closest one."""
  if name not in table:
    raise ValueError(f"{key} must be one of {tuple(table)}, got {name!r}"
                     f"{did_you_mean(name, table)}")
  return table[name]
