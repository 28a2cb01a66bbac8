"""A training run's config: from the ``ml_collections`` config to the library's dataclasses, and
every check that can fail before training starts (``validate`` needs only the config,
``validate_data`` the dataset's texts), each raising ``ConfigError`` with one line that names the
key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Any, Mapping

import ml_collections
import numpy as np

from mta_jax import algorithms, bilevel, data, episodes, features
from mta_jax.names import did_you_mean  # re-exported: callers use run_config.did_you_mean
from mta_jax.models.registry import BACKBONES
from mta_jax.scorer import ADAPT_PATTERNS, ScorerConfig

def _get(cfg: Mapping[str, Any], key: str) -> dict:
  sub = cfg[key]
  return sub.to_dict() if isinstance(sub, ml_collections.ConfigDict) else dict(sub)


def model_configs(config: Mapping[str, Any]) -> tuple[ScorerConfig, bilevel.MetaConfig]:
  """(ScorerConfig or None, MetaConfig) from a run config (ConfigDict or dict).

  The algorithm's fixed values (``algorithms.Algorithm.fixed``: SFT has no inner loop, so
  ``inner_steps=0``) replace the config's.
  """
  scorer_cfg = None  # runs of learners without the encoder scorer (the LLM) have no section
  if "scorer" in config:
    s = _get(config, "scorer")
    if "lora_targets" in s:
      s["lora_targets"] = tuple(s["lora_targets"])
    names = {f.name for f in dataclasses.fields(ScorerConfig)}
    scorer_cfg = ScorerConfig(**{k: v for k, v in s.items() if k in names})
  m = _get(config, "meta")
  m.update(dict(algorithms.get(m["algorithm"]).fixed))
  names = {f.name for f in dataclasses.fields(bilevel.MetaConfig)}
  return scorer_cfg, bilevel.MetaConfig(**{k: v for k, v in m.items() if k in names})


class ConfigError(ValueError):
  """A config value is unknown or out of range; the one-line message names the key."""


# Bounds of numeric keys (dotted paths into the run config): (">=" or ">", bound).
_BOUNDS = {k: (">=", 1) for k in ("total_steps", "log_every", "eval_every", "ckpt_every",
                                  "keep_ckpts", "episodes.batch", "sft.batch", "eval.seeds",
                                  "eval.batch", "features.q_len", "features.d_len",
                                  # the outer loss is the query stream's: q_query = 0 is no loss
                                  "episodes.q_query")}
_BOUNDS.update({k: (">=", 0) for k in ("episodes.k_shot", "episodes.n_views", "features.n_views",
                                       "optim.warmup_steps", "optim.weight_decay",
                                       # lr = 0 freezes (tests use it); < 0 climbs the loss
                                       "optim.lr", "optim.lr_of_inner_lr")})
_BOUNDS.update({"episodes.n_way": (">=", 2), "eval.n_way": (">=", 2),
                "optim.clip_norm": (">", 0), "scorer.temperature": (">", 0)})
# Tables are read when a config is checked (a row registered later is a valid choice).
_CHOICES = {"meta.algorithm": algorithms.names, "scorer.backbone": lambda: tuple(BACKBONES),
            "meta.learn_inner_lr": bilevel.LR_MODES,
            "episodes.mode": ("sd", "cd"), "eval.mode": ("sd", "cd")}


def _at(config, key: str):
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def validate(config: ml_collections.ConfigDict) -> None:
  """Every check that needs only the config (no data, no model, no JAX computation).

  Raises ``ConfigError`` with one line naming the key, the value and what is allowed, so a
  typo fails in a second instead of after the encoder and the feature cache.
  """
  for key, options in _CHOICES.items():
    if key == "meta.learn_inner_lr" and config.meta.algorithm in algorithms.TABLE and dict(
        algorithms.get(config.meta.algorithm).fixed).get("learn_inner_lr"):
      continue  # the algorithm fixes it
    value = _at(config, key)
    options = options() if callable(options) else options
    if value not in options:
      raise ConfigError(f"config.{key} must be one of {', '.join(options)}, got {value!r}"
                        f"{did_you_mean(value, options)}")
  for part in str(config.dataset).split("+"):  # one dataset, or a union "a+b" to train on
    if part not in data.KNOWN:
      raise ConfigError(f"config.dataset must be one of {', '.join(data.KNOWN)} or several "
                        f"joined by '+', got {config.dataset!r}{did_you_mean(part, data.KNOWN)}")
  version = str(config.get("dataset_version", ""))
  if version and not re.fullmatch(r"\d+\.\d+\.\d+", version):
    raise ConfigError(f"config.dataset_version must be a release like '1.1.0' or '' (the "
                      f"default release), got {version!r}")
  for key, (op, bound) in _BOUNDS.items():
    value = _at(config, key)
    if not (value > bound if op == ">" else value >= bound):
      raise ConfigError(f"config.{key} must be {op} {bound}, got {value}")
  adapt = config.scorer.adapt
  if adapt not in ADAPT_PATTERNS:
    # Any regex over parameter names is allowed, but a near-miss of a named mode is a typo
    # that would otherwise select no parameter and silently disable adaptation.
    hint = did_you_mean(adapt, ADAPT_PATTERNS)
    if hint and re.fullmatch(r"[a-z+]+", adapt):
      raise ConfigError(f"config.scorer.adapt must be one of {', '.join(ADAPT_PATTERNS)} or a "
                        f"regex over parameter names, got {adapt!r}{hint}")
    try:
      re.compile(adapt)
    except re.error as e:
      raise ConfigError(f"config.scorer.adapt {adapt!r} is not a valid regex: {e}") from None
  if config.init_from and not pathlib.Path(config.init_from).is_dir():
    raise ConfigError(f"config.init_from={config.init_from!r} is not a folder (it names the "
                      "workdir of a finished run whose best checkpoint initialises this one)")
  validate_mesh(config)
  if config.episodes.n_views > config.features.n_views:
    raise ConfigError(f"config.episodes.n_views={config.episodes.n_views} is more than the "
                      f"config.features.n_views={config.features.n_views} views cached per tool")
  # The components' own checks (their messages start with the config section's name).
  from mta_jax.models import registry  # pylint: disable=import-outside-toplevel
  num_layers = registry.get(config.scorer.backbone).config().num_layers
  try:
    scorer_cfg, meta_cfg = model_configs(config)
    scorer_cfg.validate(num_layers)
    meta_cfg.validate()
    feature_spec(config, num_layers).validate(num_layers)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"config.{e}") from None


def validate_mesh(config) -> None:
  """``config.mesh.devices`` is ``'all'`` or a positive integer (a config without a ``mesh``
  section, e.g. an older run's, means ``'all'``). Whether that many devices exist and the batch
  divides over them is checked by the trainer (``mta_jax.sharding.make_mesh``)."""
  from mta_jax import sharding  # pylint: disable=import-outside-toplevel
  mesh = config.get("mesh") or {}
  try:
    sharding.parse_devices(mesh.get("devices", "all"))
  except sharding.MeshError as e:
    raise ConfigError(f"config.{e}") from None


def episode_spec(config) -> episodes.EpisodeSpec:
  """The training episodes' shape (``config.episodes`` without the meta-batch size)."""
  return episodes.EpisodeSpec(**{k: v for k, v in _get(config, "episodes").items()
                                 if k != "batch"})


def validate_data(config: ml_collections.ConfigDict, ds: data.ToolDataset) -> None:
  """Checks the config against the training tools of ``ds`` (texts only, before encoding):
  N no larger than the tools available, K + Q no larger than the queries of any tool."""
  train_tools = ds.tool_indices("train")
  if len(train_tools) < 2:
    raise ConfigError(
        f"config.dataset={ds.name!r} has {len(train_tools)} training tools (split 'train'); "
        "training needs at least 2 (the external benchmarks other than metatool are for "
        "evaluation only)")
  _, main_doc, view_rows = ds.documents(config.features.n_views)
  pool = ds.pool(train_tools, main_doc, view_rows, query_split="train")
  if not algorithms.get(config.meta.algorithm).episodic:
    if pool.n_queries.sum() == 0:
      raise ConfigError(f"config.dataset={ds.name!r}: its training tools have no queries")
    return
  spec = episode_spec(config)
  where = f"the {pool.n_tools} training tools of {ds.name}"
  if spec.k_shot + spec.q_query > pool.min_queries:
    fewest = int(np.argmin(pool.n_queries))
    where += f"; fewest queries: {ds.tools[train_tools[fewest]].name!r}"
  try:
    spec.validate(pool)
  except ValueError as e:
    raise ConfigError(f"config.{e} ({where})") from None


def optim_config(config) -> bilevel.OptimConfig:
  o = _get(config, "optim")
  return bilevel.OptimConfig(total_steps=config.total_steps, **o)


def lever_suffix(scorer_cfg, config: Mapping[str, Any]) -> str:
  """" (hybrid, adapted mix, hard negatives, trained on a+b)": what sets a trained run apart
  from its algorithm's plain row ("" for the plain row)."""
  parts = []
  if scorer_cfg.lexical:
    parts.append("hybrid")
    if re.search(scorer_cfg.fast_pattern, "mix/lex"):
      parts.append("adapted mix")
  meta = config.get("meta", {})
  if "algorithm" in meta and "learn_inner_lr" in meta:
    algo = algorithms.get(meta["algorithm"])
    default = dict(algo.defaults + algo.fixed).get("learn_inner_lr", "per_tensor")
    if meta["learn_inner_lr"] != default:
      parts.append(f"{meta['learn_inner_lr'].replace('_', '-')} inner rates")
  if getattr(scorer_cfg, "proto_head", False):
    parts.append("Proto-MAML init")
  if config.get("episodes", {}).get("hard_fraction", 0) > 0:
    parts.append("hard negatives")
  if "+" in str(config.get("dataset", "")):
    parts.append(f"trained on {config['dataset']}")
  return f" ({', '.join(parts)})" if parts else ""


def load_dataset(name: str, data_dir: str, mta_version: str | None = None) -> data.ToolDataset:
  """A TFDS data dir (``data.load``) or, for MTA-Tools, a folder of its JSONL (no build step);
  ``a+b``: the union of datasets ``a`` and ``b`` (``data.union``), for training on both.
  ``mta_version`` pins MTA-Tools' release (``config.dataset_version``, e.g. "1.1.0"; None or
  "": the builder's default, 1.0.0); the external benchmarks have one version each."""
  if "+" in name:
    return data.union([load_dataset(part, data_dir, mta_version) for part in name.split("+")])
  if name == "mta_tools" and (pathlib.Path(data_dir) / "tools.jsonl").exists():
    ds = data.from_jsonl(data_dir)
    if mta_version and ds.version != mta_version and not (mta_version == "1.0.0"
                                                           and not ds.version):
      raise ConfigError(f"config.dataset_version={mta_version!r} but the JSONL folder "
                        f"{data_dir} holds MTA-Tools {ds.version or '1.0.0'}")
    return ds
  return data.load(name, data_dir, mta_version or None if name == "mta_tools" else None)


def feature_spec(config, num_layers: int) -> features.FeatureSpec:
  return features.FeatureSpec(n_lower=num_layers - config.scorer.n_top,
                              q_len=config.features.q_len, d_len=config.features.d_len,
                              n_views=config.features.n_views)
