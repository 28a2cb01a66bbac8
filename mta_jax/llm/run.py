"""The LLM rows of the table, end to end: load, (train), evaluate on the paper's protocol, report.

``run(config, workdir)`` is what ``experiments/llm_select.py`` calls: it builds the model from the
packaged GGUF, trains LoRA (``sft``) or meta-trains it (``mta``) when asked, then scores the
evaluator's tasks (``mta_jax.run_eval``: the encoder rows' tasks, 5 candidates, SD and CD, 5
episode seeds; ``mta_jax.llm.task_eval``) on every configured dataset and writes ``eval.json`` in
``experiments/evaluate.py``'s layout, with exactly which queries were evaluated.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
from absl import logging

from mta_jax import algorithms, data, hard_tasks, run_config, run_eval
from mta_jax import params as P
from mta_jax.llm import lora, select, task_eval
from mta_jax.llm.lm import LanguageModel


ROW_NAMES = {"base": "LLM Base (SmolLM2-135M, prompt)", "sft": "LLM LoRA SFT",
             "mta": "LLM MTA-LoRA"}
TRAINED = ("sft", "mta")  # methods that train (through mta_jax.train) before evaluating


def load_dataset(name: str, data_dir: str) -> data.ToolDataset:
  """MTA-Tools' committed JSONL when ``data_dir`` is empty, a JSONL folder, or a TFDS data dir."""
  if not data_dir:
    if name != "mta_tools":
      raise data.DatasetNotFoundError(f"dataset {name!r} needs data_dir (a TFDS data dir)")
    from datasets_tfds.mta_tools import synthesize  # pylint: disable=import-outside-toplevel
    return data.from_jsonl(synthesize.DATA_DIR)
  if (pathlib.Path(data_dir) / "tools.jsonl").exists():
    return data.from_jsonl(data_dir)
  return data.load(name, data_dir)


# Where the data lives and whether bars are drawn do not change results: a run may resume under
# other values of these.
_LOCATION_KEYS = (("data_dir",), ("eval", "external_data_dir"), ("eval", "cache_dir"),
                  ("progress",))


def _comparable(config: dict) -> dict:
  out = json.loads(json.dumps(config))
  for path in _LOCATION_KEYS:
    node = out
    for k in path[:-1]:
      node = node.get(k, {})
    node.pop(path[-1], None)
  return out


# Settings that differ per dataset: a dataset's results depend only on its own entry.
_PER_DATASET_KEYS = ("datasets", "max_queries", "external_max_queries", "max_queries_by_dataset",
                     "modes_by_dataset")


def query_cap(ecfg, name: str, main_dataset: str) -> int:
  """How many of ``name``'s scored queries are kept (0: all): its ``max_queries_by_dataset``
  entry when >= 0, else ``max_queries`` for the training dataset, ``external_max_queries`` for
  the others. ``ecfg`` is ``config.eval`` (a ConfigDict or its JSON dict)."""
  own = ecfg.get("max_queries_by_dataset", {}).get(name, -1)
  if own >= 0:
    return own
  return ecfg["max_queries"] if name == main_dataset else ecfg["external_max_queries"]


def dataset_settings(config: dict, name: str) -> dict:
  """What in a (JSON) config decides the results on dataset ``name``: everything but locations,
  with the per-dataset keys reduced to ``name``'s own cap and modes."""
  out = _comparable(config)
  ecfg = out.setdefault("eval", {})
  cap = query_cap(ecfg, name, out.get("dataset"))
  modes = list(ecfg.get("modes_by_dataset", {}).get(name, ecfg.get("modes", [])))
  for key in _PER_DATASET_KEYS:
    ecfg.pop(key, None)
  ecfg.update(max_queries=cap, modes=modes)
  return out


def finished_datasets(workdir: pathlib.Path, config) -> dict:
  """Per-dataset results an earlier run already wrote to ``workdir/eval.json`` (it is written
  after every dataset) under the same settings for that dataset (``dataset_settings``), so that
  a rerun scores only the rest; {} when there is none."""
  path = workdir / "eval.json"
  if not path.exists():
    return {}
  try:
    old = json.loads(path.read_text())
  except json.JSONDecodeError:
    logging.warning("%s is not valid JSON: evaluating every dataset again", path)
    return {}
  new_config = json.loads(config.to_json_best_effort())
  kept, redo = {}, []
  for name, res in old.get("results", {}).items():
    if "skipped" in res:
      continue
    if dataset_settings(old.get("config", {}), name) == dataset_settings(new_config, name):
      kept[name] = res
    else:
      redo.append(name)
  if redo:
    logging.warning("%s: %s were scored under other settings: evaluating them again", path,
                    sorted(redo))
  return kept


def validate(config) -> None:
  """Config checks that need no data and no model; ``run_config.ConfigError`` names the key."""
  ecfg = config.eval

  def check(key: str, values, options) -> None:
    for v in values:
      if v not in options:
        raise run_config.ConfigError(
            f"config.{key}: {v!r} is not one of {', '.join(map(str, options))}"
            + run_config.did_you_mean(v, options))

  check("method", [config.method], tuple(ROW_NAMES))
  check("eval.datasets", ecfg.datasets, data.KNOWN)
  check("eval.modes", ecfg.modes, tuple(run_eval.MODE_IDS))
  for name, modes in ecfg.modes_by_dataset.items():
    check(f"eval.modes_by_dataset.{name}", modes, tuple(run_eval.MODE_IDS))
  check("eval.shots", ecfg.shots, tuple(run_eval.SHOTS))
  check("eval.generate_seeds", ecfg.generate_seeds, tuple(ecfg.seeds))
  bounds = {"eval.max_queries": (ecfg.max_queries, 0), "eval.n_way": (ecfg.n_way, 2),
            "eval.external_max_queries": (ecfg.external_max_queries, 0),
            "eval.batch_size": (ecfg.batch_size, 1)}
  bounds.update({f"eval.max_queries_by_dataset.{k}": (v, -1)
                 for k, v in ecfg.max_queries_by_dataset.items()})
  for key, (value, low) in bounds.items():
    if value < low:
      raise run_config.ConfigError(f"config.{key} must be >= {low}, got {value}")
  if not ecfg.seeds:
    raise run_config.ConfigError("config.eval.seeds is empty: give at least one episode seed")


def run(config, workdir: str | pathlib.Path, command: str = "", commit: str = "") -> dict:
  """Builds, (trains) and evaluates the configured LLM row; writes ``workdir/eval.json`` in the
  layout of ``experiments/evaluate.py`` (so ``experiments/report.py`` puts it in the table).
  ``command`` and ``commit`` (the code's version) are recorded, the commit per dataset too."""
  validate(config)
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  t_start = time.perf_counter()
  ds = load_dataset(config.dataset, config.data_dir)
  dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[config.model.dtype]
  model = LanguageModel.pretrained(config.model.num_layers or None, dtype)
  pcfg = select.PromptConfig(**config.prompt.to_dict())
  lcfg = lora.LoraConfig(rank=config.lora.rank, alpha=config.lora.alpha,
                         targets=tuple(config.lora.targets))
  params, params_for_task, train_log = None, None, {}
  if config.method in TRAINED:
    # LoRA SFT and MTA-LoRA train through the one trainer (checkpoints, bit-exact resume,
    # SIGTERM save, non-finite stop, metric logs) in this workdir; a rerun resumes or, when
    # training finished, goes straight to evaluation. The best checkpoint by validation scores.
    from mta_jax import inference, metrics_log, train  # pylint: disable=import-outside-toplevel
    train.train(config, workdir)
    bundle = inference.restore_for_inference(workdir, "best")
    params = lora.apply(model.params, bundle.meta["params"], lcfg)
    if algorithms.get(bundle.meta_cfg.algorithm).inner_loop:
      from mta_jax.llm import meta  # pylint: disable=import-outside-toplevel
      params_for_task = meta.task_adapter(model, bundle.meta_cfg, config.eval.n_way, pcfg, lcfg,
                                          bundle.meta, lambda: selector.ds)
    rows = [r for r in metrics_log.read_jsonl(workdir) if "outer/loss" in r]
    train_log = {config.method: rows, "checkpoint_step": bundle.step,
                 "trainable_params": P.count(bundle.meta["params"])}

  ecfg = config.eval
  selector = task_eval.TaskSelector(model, ds, pcfg, batch_size=ecfg.batch_size,
                                    max_new=ecfg.max_new, generate=ecfg.generate)
  selector.params = params  # LoRA SFT: merged; MTA-LoRA: its meta-learned init; None: the base
  results, evaluated_on = {}, {}
  done = finished_datasets(workdir, config)
  if done:
    logging.info("resuming %s: keeping the results of %s", workdir / "eval.json", sorted(done))

  def summary(complete: bool) -> dict:
    return {
        "row": ROW_NAMES[config.method], "kind": "llm", "algorithm": f"llm_{config.method}",
        "complete": complete,
        "workdir": str(workdir.absolute()), "step": None, "which": None, "seed": config.seed,
        "command": command, "commit": commit,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "eval_seconds": round(time.perf_counter() - t_start, 1),
        "spec": {"modes": list(ecfg.modes), "modes_by_dataset": ecfg.modes_by_dataset.to_dict(),
                 "shots": list(ecfg.shots), "seeds": list(ecfg.seeds), "n_way": ecfg.n_way,
                 "full_pool": False},
        "protocol": (f"mta_jax.run_eval tasks of {ecfg.n_way} candidates (the encoder rows' "
                     f"tasks), episode seeds {list(ecfg.seeds)}; score = log-likelihood of "
                     "'Use [name] tool'"),
        "evaluated_on": evaluated_on, "resumed": sorted(set(done) & set(results)),
        "model": {"name": "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to float32)",
                  "num_layers": model.cfg.num_layers, "dtype": config.model.dtype},
        "results": results, "train": train_log,
        "test_time_adaptation": (
            f"k-shot settings adapt the meta-learned LoRA init per task with "
            f"{config.meta.inner_steps} inner step(s) on K labelled questions of each candidate "
            "tool (never a scored one); 0shot uses the init as is" if config.method == "mta"
            else "none"),
        "compiled_shapes": sorted(selector.shapes_seen), "tokens": dict(selector.tokens),
        "machine": f"{platform.machine()}, jax {jax.__version__} {jax.default_backend()}",
        "config": json.loads(config.to_json_best_effort()),
    }

  for name in ecfg.datasets:
    if name in done:
      results[name], evaluated_on[name] = done[name], done[name].get("evaluated_on", "")
      continue
    data_dir = config.data_dir if name == config.dataset else ecfg.external_data_dir
    try:
      eds = ds if name == config.dataset else load_dataset(name, data_dir)
    except data.DatasetNotFoundError as e:
      results[name] = {"skipped": str(e)}
      continue
    selector.ds = eds
    cap = query_cap(ecfg, name, config.dataset)
    split, evaluated_on[name] = task_eval.subset_split(
        eds, run_eval.split_for(eds, ecfg.split), cap, ecfg.max_tools, ecfg.max_per_tool)
    t0 = time.perf_counter()
    modes = tuple(ecfg.modes_by_dataset.get(name, ecfg.modes))
    neighbours = None
    if set(modes) & set(hard_tasks.MODES):  # the encoder rows' hard tasks (MiniLM similarity)
      neighbours = hard_tasks.neighbours_for(
          eds, split, hard_tasks.doc_embeddings(eds, ecfg.get("cache_dir", "workdirs/features")))
    results[name] = task_eval.evaluate(selector, eds, split, modes, ecfg.shots, ecfg.seeds,
                                       ecfg.n_way, params_for_task, progress=config.progress,
                                       generate_seeds=tuple(ecfg.generate_seeds),
                                       neighbours=neighbours)
    results[name]["evaluated_on"] = evaluated_on[name]
    results[name]["seconds"] = time.perf_counter() - t0
    # When, since a resumed run keeps datasets scored by an earlier process (maybe older code).
    results[name]["scored_at"] = datetime.datetime.now().isoformat(timespec="seconds")
    results[name]["commit"] = commit
    # Written after every dataset: a run stopped part-way keeps what it finished.
    (workdir / "eval.json").write_text(json.dumps(summary(False), indent=1))
  if all("skipped" in r for r in results.values()):
    raise data.DatasetNotFoundError("nothing to evaluate: " + " | ".join(
        r["skipped"] for r in results.values()))
  out = summary(True)
  (workdir / "eval.json").write_text(json.dumps(out, indent=1))
  return out
