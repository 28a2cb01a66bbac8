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

from mta_jax import data, run_eval
from mta_jax.llm import lora, select, task_eval
from mta_jax.llm.lm import LanguageModel


ROW_NAMES = {"base": "LLM Base (SmolLM2-135M, prompt)", "sft": "LLM LoRA SFT",
             "mta": "LLM MTA-LoRA"}


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
_LOCATION_KEYS = (("data_dir",), ("eval", "external_data_dir"), ("progress",))


def _comparable(config: dict) -> dict:
  out = json.loads(json.dumps(config))
  for path in _LOCATION_KEYS:
    node = out
    for k in path[:-1]:
      node = node.get(k, {})
    node.pop(path[-1], None)
  return out


def finished_datasets(workdir: pathlib.Path, config) -> dict:
  """Per-dataset results an earlier run with the same config already wrote to
  ``workdir/eval.json`` (it is written after every dataset), so that a rerun scores only the
  rest; {} when there is none or its config differs (then it is overwritten)."""
  path = workdir / "eval.json"
  if not path.exists():
    return {}
  try:
    old = json.loads(path.read_text())
  except json.JSONDecodeError:
    logging.warning("%s is not valid JSON: evaluating every dataset again", path)
    return {}
  if _comparable(old.get("config", {})) != _comparable(json.loads(config.to_json_best_effort())):
    logging.warning("%s was written under another config: evaluating every dataset again", path)
    return {}
  return {k: v for k, v in old.get("results", {}).items() if "skipped" not in v}


def run(config, workdir: str | pathlib.Path, command: str = "") -> dict:
  """Builds, (trains) and evaluates the configured LLM row; writes ``workdir/eval.json`` in the
  layout of ``experiments/evaluate.py`` (so ``experiments/report.py`` puts it in the table)."""
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
  if config.method == "sft":
    from mta_jax.llm import train  # pylint: disable=import-outside-toplevel
    lora_params, train_log = train.train_sft(model, ds, config, pcfg, lcfg)
    params = lora.apply(model.params, lora_params, lcfg)
  elif config.method == "mta":
    from mta_jax.llm import meta  # pylint: disable=import-outside-toplevel
    meta_params, train_log = meta.train_mta(model, ds, config, pcfg, lcfg)
    params = lora.apply(model.params, meta_params["params"], lcfg)
    params_for_task = meta.task_adapter(model, config, pcfg, lcfg, meta_params,
                                        lambda: selector.ds)
  elif config.method != "base":
    raise ValueError(f"config.method must be base, sft or mta, got {config.method!r}")

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
        "command": command, "date": datetime.datetime.now().isoformat(timespec="seconds"),
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
    cap = ecfg.max_queries if name == config.dataset else ecfg.external_max_queries
    split, evaluated_on[name] = task_eval.subset_split(
        eds, run_eval.split_for(eds, ecfg.split), cap, ecfg.max_tools, ecfg.max_per_tool)
    t0 = time.perf_counter()
    modes = tuple(ecfg.modes_by_dataset.get(name, ecfg.modes))
    results[name] = task_eval.evaluate(selector, eds, split, modes, ecfg.shots, ecfg.seeds,
                                       ecfg.n_way, params_for_task, progress=config.progress,
                                       generate_seeds=tuple(ecfg.generate_seeds))
    results[name]["evaluated_on"] = evaluated_on[name]
    results[name]["seconds"] = time.perf_counter() - t0
    # Written after every dataset: a run stopped part-way keeps what it finished.
    (workdir / "eval.json").write_text(json.dumps(summary(False), indent=1))
  if all("skipped" in r for r in results.values()):
    raise data.DatasetNotFoundError("nothing to evaluate: " + " | ".join(
        r["skipped"] for r in results.values()))
  out = summary(True)
  (workdir / "eval.json").write_text(json.dumps(out, indent=1))
  return out
