"""A finished (or running) training run as what prediction needs: its learner's configs and φ.

Sits above ``checkpointing`` (which only reads and verifies the saved state) and
``run_config`` (which turns the saved config into the library's dataclasses).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from mta_jax import checkpointing, run_config
from mta_jax.learner import full_params


@dataclasses.dataclass
class InferenceBundle:
  """Everything a selector needs to score with a trained run (no optimiser state)."""

  scorer_cfg: Any  # mta_jax.scorer.ScorerConfig (None for a run of another learner)
  meta_cfg: Any  # mta_jax.bilevel.MetaConfig
  meta: dict  # {"params": flat dict of every saved param (frozen included), "inner_lr": dict}
  config: dict  # the run's full config, as saved
  step: int


def restore_for_inference(workdir: str | os.PathLike, which: str = "best") -> InferenceBundle:
  """The best (or latest) checkpoint of a run as an ``InferenceBundle``.

  ``which="best"`` falls back to the latest periodic checkpoint when the run has no best one.
  Raises ``checkpointing.CheckpointError`` naming the path and the problem when there is no
  checkpoint or it is corrupt. Needs no model: shapes come from the checkpoint's metadata.
  """
  state, record, step = checkpointing.restore_newest(workdir, which)
  config = record["config"]
  scorer_cfg, meta_cfg = run_config.model_configs(config)
  meta = full_params({"meta": {"params": state["meta"]["params"],
                               "inner_lr": dict(state["meta"]["inner_lr"])},
                      "frozen": state["frozen"]})
  return InferenceBundle(scorer_cfg, meta_cfg, meta, config, step)
