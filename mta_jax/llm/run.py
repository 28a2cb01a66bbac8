"""The LLM rows of the table, end to end: load, (train), evaluate on the paper's protocol, report.

``run(config, workdir)`` is what ``experiments/llm_select.py`` calls: it builds the model from the
packaged GGUF, trains LoRA (``sft``) or meta-trains it (``mta``) when asked, then scores the
evaluation episodes of ``mta_jax.evaluation`` (5 candidates, SD and CD distractors, one
episode per query per seed) and writes ``results.json`` with exactly what was evaluated.
"""

from __future__ import annotations

import json
import pathlib
import platform
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mta_jax import data, evaluation
from mta_jax.llm import lora, select
from mta_jax.llm.lm import LanguageModel


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


def eval_rows(ds: data.ToolDataset, ecfg) -> tuple[np.ndarray, str]:
  """The evaluated query rows and a sentence saying exactly which they are."""
  all_rows = ds.query_indices(ecfg.split)
  rows = all_rows[::ecfg.query_stride]
  if ecfg.max_queries:
    rows = rows[:ecfg.max_queries]
  which = ("all, in dataset order" if ecfg.query_stride == 1 else
           f"every {ecfg.query_stride}th in dataset order, starting with the first")
  what = (f"{len(rows)} of the {len(all_rows)} {ecfg.split}-split queries of {ds.name}: {which}"
          + (f", the first {ecfg.max_queries} kept" if ecfg.max_queries else ""))
  return rows, what


def _acc_block(per_seed: list[float]) -> dict:
  return {"mean": float(np.mean(per_seed)), "std": float(np.std(per_seed)),
          "per_seed": [float(a) for a in per_seed]}


def evaluate(selector: select.Selector, ds: data.ToolDataset, rows: np.ndarray, ecfg,
             params_for: Callable[[np.ndarray, np.ndarray], Any] | None = None,
             progress: bool = False) -> dict:
  """Accuracy of every read-out over ``ecfg.modes`` x ``ecfg.seeds`` with the project's evaluator.

  ``params_for(rows, cands)`` (optional) returns per-episode parameters (MTA-LoRA adapts per
  episode); then episodes are scored one at a time.
  """
  out = {}
  for mode in ecfg.modes:
    stash: list[dict] = []

    def score(r, cands):
      if params_for is None:
        res = selector.run(r, cands, progress=progress)
      else:
        parts = [selector.run(r[i:i + 1], cands[i:i + 1], params=params_for(r[i:i + 1],
                                                                            cands[i:i + 1]))
                 for i in range(len(r))]
        res = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
      stash.append({**res, "cands": cands})
      return res["loglik"]

    t0 = time.perf_counter()
    ll = evaluation.episode_accuracy(score, ds, rows, mode, tuple(ecfg.seeds), ecfg.n_way)
    secs = time.perf_counter() - t0
    mean_acc, gen_acc, parse_fail = [], [], []
    for seed, res in zip(ecfg.seeds, stash):
      rng = np.random.default_rng(seed)
      cands, labels = evaluation.candidate_sets(rng, ds, rows, mode, ecfg.n_way)
      assert np.array_equal(cands, res["cands"]), "candidate sets differ from the evaluator's"
      mean_acc.append(evaluation.accuracy(res["loglik_mean"], cands, labels, rng))
      if "gen_pick" in res:
        gen_acc.append(float(np.mean(res["gen_pick"] == labels)))
        parse_fail.append(float(np.mean(res["gen_pick"] < 0)))
    block = {"loglik": {k: ll[k] for k in ("mean", "std", "per_seed")},
             "loglik_mean": _acc_block(mean_acc), "episodes": len(rows) * len(ecfg.seeds),
             "seconds": secs,
             "prompt_tokens_mean": float(np.mean([r["prompt_tokens"].mean() for r in stash]))}
    if gen_acc:
      block["generate"] = _acc_block(gen_acc)
      block["generate"]["no_candidate_named"] = float(np.mean(parse_fail))
      block["generate"]["examples"] = [str(t) for t in stash[0]["gen_text"][:5]]
    out[mode] = block
  return out


def run(config, workdir: str | pathlib.Path) -> dict:
  """Builds, (trains) and evaluates the configured LLM row; writes ``workdir/results.json``."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  t_start = time.perf_counter()
  ds = load_dataset(config.dataset, config.data_dir)
  dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[config.model.dtype]
  model = LanguageModel.pretrained(config.model.num_layers or None, dtype)
  pcfg = select.PromptConfig(**config.prompt.to_dict())
  lcfg = lora.LoraConfig(rank=config.lora.rank, alpha=config.lora.alpha,
                         targets=tuple(config.lora.targets))
  params, params_for, train_log = None, None, {}
  if config.method == "sft":
    from mta_jax.llm import train  # pylint: disable=import-outside-toplevel
    lora_params, train_log = train.train_sft(model, ds, config, pcfg, lcfg)
    params = lora.apply(model.params, lora_params, lcfg)
  elif config.method == "mta":
    from mta_jax.llm import meta  # pylint: disable=import-outside-toplevel
    meta_params, train_log = meta.train_mta(model, ds, config, pcfg, lcfg)
    params_for = meta.episode_adapter(model, ds, config, pcfg, lcfg, meta_params)
  elif config.method != "base":
    raise ValueError(f"config.method must be base, sft or mta, got {config.method!r}")

  ecfg = config.eval
  selector = select.Selector(model, ds, pcfg, batch_size=ecfg.batch_size, max_new=ecfg.max_new,
                             generate=ecfg.generate)
  selector.params = params  # LoRA SFT: the merged parameters; None: the base model
  rows, what = eval_rows(ds, ecfg)
  results = evaluate(selector, ds, rows, ecfg, params_for, progress=config.progress)
  summary = {
      "method": config.method, "dataset": ds.name, "evaluated_on": what,
      "query_rows": [int(r) for r in rows],
      "protocol": f"{ecfg.n_way} candidates (gold + {ecfg.n_way - 1} distractors), modes "
                  f"{list(ecfg.modes)}, seeds {list(ecfg.seeds)}, one episode per query per seed",
      "model": {"name": "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to float32)",
                "num_layers": model.cfg.num_layers, "dtype": config.model.dtype},
      "results": results, "train": train_log,
      "test_time_adaptation": (
          f"each test episode adapts the meta-learned LoRA init with {config.meta.inner_steps} "
          f"inner step(s) on {config.meta.eval_k_shot} other labelled question(s) of each "
          "candidate tool (never the evaluated one)" if config.method == "mta" else "none"),
      "compiled_shapes": sorted(selector.shapes_seen),
      "seconds_total": time.perf_counter() - t_start,
      "machine": f"{platform.machine()}, jax {jax.__version__} {jax.default_backend()}",
      "config": json.loads(config.to_json_best_effort()),
  }
  (workdir / "results.json").write_text(json.dumps(summary, indent=1))
  return summary
