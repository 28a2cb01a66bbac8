r"""Evaluates a trained run or a baseline under every protocol and writes a JSON of results.

    python experiments/evaluate.py --workdir=workdirs/mta_sd
    python experiments/evaluate.py --baseline=bm25 --workdir=workdirs/bm25 \
        --datasets=mta_tools,metatool,api_bank,toolalpaca,apibench

``--workdir`` is the run to evaluate (its best checkpoint, or ``--which=latest``) and where
``eval.json`` is written; with ``--baseline=random|bm25|base`` nothing is restored and the
workdir only receives the results. Datasets that are not built are skipped and say so in the
JSON (and in the report's table): nothing is dropped silently; if none of them is built, the
run fails. Bad input (unknown flag, dataset or shot setting, no checkpoint in the workdir) gives
one line on stderr and exit status 1 (``experiments/_cli.py``).

Protocols (``--modes``): ``sd``, ``cd`` (5 random distractors from the gold tool's group / from
all unseen tools) and ``hard5``, ``hard10`` (each scored tool with its 4 / 9 nearest tools by the
zero-shot encoder's documentation similarity, the same candidate sets for every row:
``mta_jax.hard_tasks``; the similarity reads the Base row's feature cache in ``--cache_dir``),
plus the full pool. ``--per_query_shots`` keeps, for those shots, each query's hits over the
episode seeds (and its full-pool rank) for ``report.py --compare`` (``mta_jax.paired``).
"""

import dataclasses
import datetime
import json
import logging as std_logging
import pathlib
import re
import sys
import time

from absl import app, flags, logging

import _cli  # experiments/_cli.py: bad input -> one line on stderr, exit status 1

_WORKDIR = flags.DEFINE_string("workdir", None, "Run to evaluate / where eval.json goes.")
_BASELINE = flags.DEFINE_enum("baseline", None, ["random", "bm25", "base", "hybrid"],
                              "Evaluate an untrained baseline instead of a checkpoint (hybrid: "
                              "the zero-shot encoder + the BM25 term, mta.py:hybrid).")
_LEX_WEIGHT = flags.DEFINE_float("lexical_weight", None, "--baseline=hybrid: the BM25 term's "
                                 "weight (default: scorer.lexical_weight of mta.py).")
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint to evaluate.")
_DATASETS = flags.DEFINE_list("datasets", ["mta_tools"], "Datasets to evaluate on.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir (default: the run's).")
_CACHE_DIR = flags.DEFINE_string("cache_dir", "workdirs/features", "Feature cache folder.")
_SEEDS = flags.DEFINE_integer("seeds", 5, "Episode seeds per protocol.", lower_bound=1)
_SHOTS = flags.DEFINE_list("shots", ["0shot", "k1", "k5"], "Test-time adaptation settings.")
_MODES = flags.DEFINE_list("modes", ["sd", "cd", "hard5", "hard10"],
                           "Protocols: sd, cd, hard5, hard10 (the full pool: always).")
_PER_QUERY = flags.DEFINE_list("per_query_shots", ["0shot"],
                               "Shots whose per-query hits eval.json keeps (for report.py "
                               "--compare); empty: none.")
_SWEEP = flags.DEFINE_list("sweep_inner_steps", ["0", "1", "3", "5", "10"],
                           "Inner steps for the accuracy-vs-steps curve (MTA-Tools SD 0-shot).")
_MTA_VERSION = flags.DEFINE_string(
    "mta_version", None, "MTA-Tools release to evaluate on (e.g. 1.1.0; default: the run's "
    "config.dataset_version, '' = the builder's default 1.0.0).")
_SPLIT = flags.DEFINE_enum("split", "test", ["test", "validation"],
                           "Tools to score: the unseen test tools (reported), or the validation "
                           "tools (for choosing settings; distractors may be train tools; "
                           "datasets without a validation split are skipped).")
_NAME = flags.DEFINE_string("name", None, "Row name in the report (default: from the run).")
_OUT = flags.DEFINE_string("out", None, "Output JSON (default: <workdir>/eval.json).")
flags.mark_flag_as_required("workdir")

BASELINE_ROWS = {"random": "Random", "bm25": "BM25", "base": "Base (zero-shot)",
                 "hybrid": "Hybrid (zero-shot)"}


def _model(bundle_or_none, kind: str = "base"):
  """(scorer_cfg, meta_cfg, meta, config) of the run or of a zero-shot model (kind base or
  hybrid)."""
  from mta_jax import baselines, run_config  # pylint: disable=import-outside-toplevel
  if bundle_or_none is not None:
    b = bundle_or_none
    return b.scorer_cfg, b.meta_cfg, b.meta, b.config
  sys.path.insert(0, str(pathlib.Path(__file__).parent / "configs"))
  import mta  # pylint: disable=import-outside-toplevel
  config = json.loads(mta.get_config("sd,hybrid" if kind == "hybrid" else "sd").to_json())
  if kind == "hybrid" and _LEX_WEIGHT.value is not None:
    config["scorer"]["lexical_weight"] = _LEX_WEIGHT.value
  scorer_cfg, _ = run_config.model_configs(config)
  return scorer_cfg, baselines.NO_ADAPT, None, config


def _mta_version(config) -> str:
  """MTA-Tools' release to evaluate: --mta_version, else the run's config.dataset_version."""
  return _MTA_VERSION.value if _MTA_VERSION.value is not None else config.get(
      "dataset_version", "")


def evaluate_dataset(name, kind, model, encoder, spec, data_dir) -> dict:
  """All protocols on one dataset's unseen tools ({"skipped": why} if it is not built)."""
  import jax  # pylint: disable=import-outside-toplevel
  # pylint: disable-next=import-outside-toplevel
  from mta_jax import baselines, data, features, hard_tasks, run_config, run_eval
  from mta_jax.scorer import Scorer  # pylint: disable=import-outside-toplevel
  try:
    ds = run_config.load_dataset(name, data_dir, _mta_version(model[3]))
  except data.DatasetNotFoundError as e:
    logging.warning("skipping %s: %s", name, e)
    return {"skipped": str(e)}
  if _SPLIT.value == "validation":
    if not len(ds.tool_indices("validation")):
      return {"skipped": f"{name} has no validation tools (choose settings on a dataset that "
                         "has them)"}
    split = run_eval.split_for(ds, "validation", distractors_from=("train",))
  else:
    split = run_eval.split_for(ds, "test")
  scorer_cfg, meta_cfg, meta, config = model
  neighbours = None
  if any(m in hard_tasks.MODES for m in spec.modes):  # the same for every row of the table
    neighbours = hard_tasks.neighbours_for(
        ds, split, hard_tasks.doc_embeddings(ds, _CACHE_DIR.value, encoder))
  cache = None
  if kind in ("random", "bm25"):  # index-only score functions: no features, no adaptation
    _, main_doc, view_rows = ds.documents(spec.n_views)
    fn = run_eval.random_score_fn(0) if kind == "random" else run_eval.bm25_score_fn(ds)
    adapts = False
  else:
    fspec = features.FeatureSpec(n_lower=encoder.cfg.num_layers - scorer_cfg.n_top,
                                 q_len=config["features"]["q_len"],
                                 d_len=config["features"]["d_len"], n_views=spec.n_views)
    cache = features.text_cache(ds, fspec, _CACHE_DIR.value, encoder, lexical=scorer_cfg.lexical)
    main_doc, view_rows = cache.main_doc, cache.view_rows
    scorer = Scorer(scorer_cfg, encoder.model)
    meta = jax.device_put(meta if meta is not None else baselines.base_meta(scorer))
    adapts = meta_cfg.algo.adapts_at_test(meta_cfg)
    fn = run_eval.model_scorer(scorer, meta_cfg, cache.arrays())(meta)
  out = run_eval.evaluate(fn, ds, split, main_doc, view_rows, spec, adapts=adapts,
                          progress=True, neighbours=neighbours)
  if cache is not None and adapts and meta_cfg.algo.inner_loop and name == "mta_tools":
    sweep = {}
    for n in (int(s) for s in _SWEEP.value):
      mcfg = dataclasses.replace(meta_cfg, inner_steps=n)
      f = run_eval.model_scorer(scorer, mcfg, cache.arrays())(meta)
      sweep[str(n)] = run_eval.protocol(f, ds, split, "sd", 0, spec, main_doc, view_rows)["mean"]
    out["inner_steps_sweep"] = sweep
  out["dataset_version"] = ds.version  # the release scored (report.py prints it)
  return out


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # Orbax logs every save step at INFO through absl's logger; our progress goes through the
  # standard root logger, which this leaves at INFO.
  std_logging.getLogger("absl").setLevel(std_logging.WARNING)
  from mta_jax import runtime  # pylint: disable=import-outside-toplevel
  runtime.setup_jax()
  from mta_jax import data, inference, run_eval  # pylint: disable=import-outside-toplevel
  t0 = time.time()
  # Every input is checked before the encoder loads; the errors are one line (see _cli).
  for name in _DATASETS.value:
    data.check_name(name)
  bad = [s for s in _SHOTS.value if s not in run_eval.SHOTS]
  if bad:
    raise app.UsageError(f"--shots: unknown setting {bad[0]!r}"
                         f"{_cli.did_you_mean(bad[0], run_eval.SHOTS)}; known: "
                         f"{', '.join(run_eval.SHOTS)}")
  for flag, values, known in (("--modes", _MODES.value, run_eval.MODE_IDS),
                              ("--per_query_shots", _PER_QUERY.value, run_eval.SHOTS)):
    if bad := [s for s in values if s not in known]:
      raise app.UsageError(f"{flag}: unknown setting {bad[0]!r}"
                           f"{_cli.did_you_mean(bad[0], known)}; known: {', '.join(known)}")
  if not all(re.fullmatch(r"\d+", s) for s in _SWEEP.value):
    raise app.UsageError(f"--sweep_inner_steps must be integers >= 0, got {_SWEEP.value}")
  kind = _BASELINE.value or "model"
  bundle = None
  if kind == "model":
    bundle = inference.restore_for_inference(_WORKDIR.value, _WHICH.value)
  model = _model(bundle, kind)
  config = model[3]
  spec = run_eval.EvalSpec(modes=tuple(_MODES.value), shots=tuple(_SHOTS.value),
                           seeds=tuple(range(_SEEDS.value)),
                           n_views=config["features"]["n_views"],
                           per_query=tuple(_PER_QUERY.value))
  encoder = None
  if kind in ("model", "base", "hybrid"):
    from mta_jax.models import registry  # pylint: disable=import-outside-toplevel
    encoder = registry.load(model[0].backbone)
  algo = config["meta"]["algorithm"] if kind == "model" else kind
  results = {}
  for name in _DATASETS.value:
    data_dir = _DATA_DIR.value or (config["data_dir"] if name == "mta_tools" else "tfds_data")
    logging.info("evaluating %s on %s", algo, name)
    results[name] = evaluate_dataset(name, kind, model, encoder, spec, data_dir)
  if all("skipped" in r for r in results.values()):
    raise data.DatasetNotFoundError("nothing to evaluate: " + " | ".join(
        r["skipped"] for r in results.values()))
  from mta_jax import algorithms, run_config  # pylint: disable=import-outside-toplevel
  row = algorithms.get(algo).row if kind == "model" else BASELINE_ROWS[kind]
  if kind == "model":  # levers of issue 18 make rows of their own
    row += run_config.lever_suffix(model[0], config)
  out = {"row": _NAME.value or row, "kind": kind, "algorithm": algo,
         "workdir": str(pathlib.Path(_WORKDIR.value).absolute()),
         "step": bundle.step if bundle else None, "which": _WHICH.value if bundle else None,
         "seed": config.get("seed") if bundle else None, "split": _SPLIT.value,
         "command": "python " + " ".join([pathlib.Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
         "date": datetime.datetime.now().isoformat(timespec="seconds"),
         "commit": _cli.git_commit(),
         "eval_seconds": round(time.time() - t0, 1), "spec": dataclasses.asdict(spec),
         "results": results}
  path = pathlib.Path(_OUT.value or pathlib.Path(_WORKDIR.value) / "eval.json")
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(out, indent=1))
  mt = results.get("mta_tools", {})
  if "full_pool" in mt:
    cells = [f"{m.upper()} {100 * mt[m]['0shot']['mean']:.2f}" for m in spec.modes
             if "mean" in mt.get(m, {}).get("0shot", {})]
    print(f"{out['row']}: MTA-Tools " + " ".join(cells) + f" full-pool top-1 "
          f"{100 * mt['full_pool']['0shot']['top1']:.2f} -> {path}")


if __name__ == "__main__":
  _cli.run(main, "evaluate")
