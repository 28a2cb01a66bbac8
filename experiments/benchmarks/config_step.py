"""Benchmark: the training step of each configuration of the ablation, side by side (issue 18).

Each row is a committed flagfile (``experiments/flags/<row>.flags``: its ``--config=`` token and
``--config.*`` overrides) or a capacity variant of one (LoRA on the top layer, per-element inner
rates). For each, the real jitted ``bilevel.make_meta_train_step`` of that config runs on
features of the real shapes (101 training tools, 60 queries each, 4 documentation views; sentence
embeddings for ``n_top=0``, cached lower-layer states of ``q_len``/``d_len`` tokens for
``n_top=1``; random values: the cost depends on shapes only) and episodes (or SFT batches) drawn
by the real samplers. Rows are timed round-robin (one step of each row per round), so machine
noise hits all rows alike; the table gives the median s/step, the ratio to ``mta_sd`` measured in
the same run, the compile time and the step's compiled temp memory.

    .venv/bin/python experiments/benchmarks/config_step.py [--rounds 15] [--rows mta_sd,sft,...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import statistics
import sys
import time

import jax
import numpy as np
from absl import flags
from ml_collections import config_flags

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments" / "configs"))

# pylint: disable=wrong-import-position
from mta_jax import baselines, bilevel, episodes, run_config
from mta_jax.models import registry
from mta_jax.scorer import Scorer

# Capacity variants: (base flagfile, extra overrides); not rows of the ablation (yet).
VARIANTS = {
    "mta_hybrid_per_element": ("mta_hybrid", {"meta.learn_inner_lr": "per_element"}),
    "mta_top_lora8": ("mta_top", {"scorer.adapt": "lora+head", "scorer.lora_rank": 8}),
    "mta_hybrid_steps5": ("mta_hybrid", {"meta.inner_steps": 5}),
}
DEFAULT_ROWS = ("sft", "mta_sd", "sft_hybrid", "mta_hybrid", "protonet_hybrid", "mta_hybrid_mix",
                "mta_hybrid_hard", "fomaml", "mta_hybrid_per_element", "mta_hybrid_steps5",
                "mta_top", "mta_top_lora8")
N_TOOLS, N_QUERIES, N_VIEWS, N_GROUPS = 101, 60, 4, 7


def config_of(row: str):
  """The config a flagfile row (or a variant of one) trains with, parsed as meta_train parses it.

  The flagfile goes through absl's own ``--flagfile`` expansion and ml_collections' config flag
  (``--workdir``, the flagfiles' one other flag, is parsed and unused; any other flag is an
  error, never silently skipped); a variant's overrides are more ``--config.<key>=<value>``
  flags after it, so the last one wins as on the command line.
  """
  base, extra = VARIANTS.get(row, (row, {}))
  argv = ["config_step", f"--flagfile={ROOT / 'experiments' / 'flags' / f'{base}.flags'}"]
  argv += [f"--config.{k}={v}" for k, v in extra.items()]
  fv = flags.FlagValues()
  # sys_argv: the config flag reads its overrides from this argv, not from the process's.
  config_flags.DEFINE_config_file("config", None, "A get_config(arg) file:arg.", flag_values=fv,
                                  sys_argv=argv)
  flags.DEFINE_string("workdir", None, "Unused here.", flag_values=fv)
  with contextlib.chdir(ROOT):  # the flagfiles name the config file relative to the repository
    fv(argv)
  return fv["config"].value


def _pool() -> episodes.ToolPool:
  per = 1 + N_VIEWS
  return episodes.ToolPool.build(
      doc=np.arange(N_TOOLS) * per, group=np.arange(N_TOOLS) % N_GROUPS,
      queries_by_tool=[t * N_QUERIES + np.arange(N_QUERIES) for t in range(N_TOOLS)],
      views_by_tool=[t * per + 1 + np.arange(N_VIEWS) for t in range(N_TOOLS)])


def _cache(config, n_top: int, hidden: int, lexical: bool, rng) -> dict:
  lq, ld = (1, 1) if n_top == 0 else (config.features.q_len, config.features.d_len)
  nq, nd = N_TOOLS * N_QUERIES, N_TOOLS * (1 + N_VIEWS)
  cache = {"q_h": rng.standard_normal((nq, lq, hidden), np.float32),
           "q_m": np.ones((nq, lq), np.int32),
           "d_h": rng.standard_normal((nd, ld, hidden), np.float32),
           "d_m": np.ones((nd, ld), np.int32)}
  if lexical:
    cache.update(q_lex=rng.random((nq, N_TOOLS), np.float32),
                 d_lex=rng.random((nd, N_TOOLS), np.float32),
                 doc_col=np.repeat(np.arange(N_TOOLS, dtype=np.int32), 1 + N_VIEWS))
  return cache


class Row:
  """One configuration's jitted step, state and batch sampler."""

  def __init__(self, name: str, encoder, seed: int = 0):
    self.name = name
    config = config_of(name)
    scorer_cfg, self.meta_cfg = run_config.model_configs(config)
    scorer = Scorer(scorer_cfg, encoder.model)
    learner = bilevel.as_learner(scorer)
    opt = bilevel.make_optimizer(run_config.optim_config(config))
    self.rng = np.random.default_rng(seed)
    cache = jax.device_put(_cache(config, scorer_cfg.n_top, encoder.cfg.hidden_size,
                                  scorer_cfg.lexical, self.rng))
    pool = _pool()
    spec = run_config.episode_spec(config)
    if spec.hard_fraction > 0:
      sims = self.rng.random((N_TOOLS, N_TOOLS))
      np.fill_diagonal(sims, -np.inf)
      pool.near = np.argsort(-sims, axis=1)[:, :spec.n_way - 1].astype(np.int32)
    algo = self.meta_cfg.algo
    batch = config.episodes.batch if algo.episodic else config.sft.batch

    def sample():
      idx = (episodes.sample_episodes(self.rng, pool, spec, batch) if algo.episodic
             else baselines.sample_sft_batch(self.rng, pool, batch))
      return episodes.gather_jit(cache, {k: idx[k] for k in ("tools", "support", "views",
                                                              "query")})
    self.sample = sample
    self.state = bilevel.init_train_state(learner, self.meta_cfg, opt, jax.random.key(seed))
    self.step_fn = bilevel.make_meta_train_step(learner, self.meta_cfg, opt)
    self.key = jax.random.key(seed + 1)
    t0 = time.perf_counter()
    batch0 = self.sample()
    compiled = self.step_fn.lower(self.state, batch0, self.key).compile()
    mem = compiled.memory_analysis()
    self.temp_mib = getattr(mem, "temp_size_in_bytes", 0) / 2 ** 20 if mem else float("nan")
    self.run_once(batch0)
    self.compile_s = time.perf_counter() - t0
    self.times: list[float] = []
    self.desc = (f"{algo.name}, adapt={scorer_cfg.adapt}, n_top={scorer_cfg.n_top}, "
                 f"lexical={scorer_cfg.lexical}, inner_steps={self.meta_cfg.inner_steps}, "
                 f"batch={batch}")

  def run_once(self, batch):
    self.state, metrics = self.step_fn(self.state, batch, self.key)
    jax.block_until_ready(metrics)

  def timed(self):
    batch = self.sample()
    jax.block_until_ready(batch)
    t0 = time.perf_counter()
    self.run_once(batch)
    self.times.append(time.perf_counter() - t0)


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--rounds", type=int, default=15, help="timed steps per row (round-robin)")
  ap.add_argument("--rows", default=",".join(DEFAULT_ROWS), help="flagfile rows or variants")
  ap.add_argument("--json", default=None, help="also write the results here")
  args = ap.parse_args(argv)
  encoder = registry.load()
  rows = []
  for name in args.rows.split(","):
    print(f"compiling {name} ...", flush=True)
    rows.append(Row(name, encoder))
  for _ in range(args.rounds):
    for r in rows:
      r.timed()
  ref = next((statistics.median(r.times) for r in rows if r.name == "mta_sd"), None)
  print(f"\n{args.rounds} timed steps per row, round-robin, median s/step; device "
        f"{jax.devices()[0].device_kind}, {jax.device_count()} device(s)\n")
  print("| row | configuration | s/step | x mta_sd | compile + 1st step (s) | temp MiB |")
  print("|---|---|---|---|---|---|")
  out = []
  for r in rows:
    med = statistics.median(r.times)
    ratio = f"{med / ref:.2f}" if ref else "—"
    print(f"| {r.name} | {r.desc} | {med:.4f} | {ratio} | {r.compile_s:.1f} | "
          f"{r.temp_mib:.0f} |")
    out.append({"row": r.name, "config": r.desc, "median_s": med, "times": r.times,
                "compile_s": r.compile_s, "temp_mib": r.temp_mib})
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(out, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
