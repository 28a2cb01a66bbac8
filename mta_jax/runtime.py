"""Process set-up shared by every entry point: JAX's persistent compilation cache and, on a
multi-host launch, ``jax.distributed``.

    from mta_jax import runtime
    runtime.setup_jax()   # first thing after flag parsing, before any JAX computation

A multi-host run passes where its processes meet (``sharding.DistributedSpec``; flags of
``experiments/meta_train.py``, else ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` /
``JAX_PROCESS_ID``, else a cluster JAX detects).
"""

from __future__ import annotations

import logging
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def setup_jax(cache_dir: str | None = None, distributed=None) -> str:
  """Points JAX's compilation cache at ``cache_dir`` (default ``$JAX_COMPILATION_CACHE_DIR``,
  else the repository's git-ignored ``.jax_cache``), caches every compile (repeat runs and tests
  reuse programs ~10x faster), and initialises ``jax.distributed`` when a multi-host launch is
  configured (``distributed``: a ``sharding.DistributedSpec``, default from the environment).
  Returns the cache folder."""
  import jax  # pylint: disable=import-outside-toplevel
  from mta_jax import sharding  # pylint: disable=import-outside-toplevel
  # JAX reports each backend it probes and does not find (TPU, CUDA on a CPU machine) at INFO:
  # noise on stderr, where the entry points' one-line errors go.
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
  cache = cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(ROOT / ".jax_cache")
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  sharding.maybe_initialize_distributed(distributed)
  return cache
