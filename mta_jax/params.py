"""Flat parameter dictionaries: the one parameter format the meta-learning core uses.

Parameters are ``dict[str, Array]`` keyed by slash paths ("top/layers/0/query/kernel",
"head/w", "lora/top/layers/0/query/kernel/a"). A flat dict is a pytree that optax, Orbax,
``jax.grad`` and ``vmap`` all take as is, and a regular expression over its keys is enough to say
which parameters adapt in the inner loop (the *fast* ones) and which stay (the *slow* ones).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp

Params = dict[str, jax.Array]


def flatten(tree: Mapping[Any, Any], prefix: str = "") -> tuple[Params, dict[str, tuple]]:
  """Nested mapping -> (flat dict, key -> original path tuple) so ``unflatten`` can invert it."""
  flat: Params = {}
  paths: dict[str, tuple] = {}

  def rec(node, path):
    if isinstance(node, Mapping):
      for k, v in node.items():
        rec(v, path + (k,))
    else:
      key = prefix + "/".join(str(p) for p in path)
      flat[key] = node
      paths[key] = path

  rec(tree, ())
  return flat, paths


def unflatten(flat: Mapping[str, Any], paths: Mapping[str, tuple], prefix: str = "") -> dict:
  """Rebuilds the nested dict (original key types, e.g. int list indices) for ``nnx.merge``."""
  out: dict = {}
  for key, path in paths.items():
    node = out
    for p in path[:-1]:
      node = node.setdefault(p, {})
    node[path[-1]] = flat[prefix + key]
  return out


def partition(params: Mapping[str, Any], pattern: str) -> tuple[Params, Params]:
  """Splits into (matching ``pattern`` = fast, the rest = slow), both flat dicts."""
  rx = re.compile(pattern)
  fast = {k: v for k, v in params.items() if rx.search(k)}
  slow = {k: v for k, v in params.items() if not rx.search(k)}
  return fast, slow


def merge(*parts: Mapping[str, Any]) -> Params:
  """Union of disjoint flat dicts (raises on a key present twice)."""
  out: Params = {}
  for part in parts:
    for k, v in part.items():
      if k in out:
        raise KeyError(f"parameter {k!r} is in two partitions")
      out[k] = v
  return out


def global_norm(tree: Any) -> jax.Array:
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.zeros(())
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))


def count(tree: Any) -> int:
  return int(sum(x.size for x in jax.tree.leaves(tree)))


def overview(params: Mapping[str, Any]) -> str:
  """A human-readable table of parameter groups, shapes and sizes (logged at start)."""
  groups: dict[str, int] = {}
  for k, v in params.items():
    groups[k.split("/")[0]] = groups.get(k.split("/")[0], 0) + int(v.size)
  lines = [f"{'group':<12}{'tensors':>8}{'params':>12}"]
  for g, n in groups.items():
    lines.append(f"{g:<12}{sum(1 for k in params if k.split('/')[0] == g):>8}{n:>12,}")
  lines.append(f"{'total':<12}{len(params):>8}{count(dict(params)):>12,}")
  return "\n".join(lines)
