"""Benchmark: the compiled meta-train step's memory against the number of inner steps.

For each algorithm variant and inner-step count, compiles the jitted step (what meta_train.py
runs) at the reference shape of ``meta_step.py`` (meta-batch 8, N=5, K=2, Q=3, queries 32 and
documents 64 tokens, top layer + 384x384 head adapted) and prints XLA's ``memory_analysis()``:
temporary buffers (what grows when an unrolled inner loop stores its residuals), arguments and
outputs. Nothing is run: compile-only, so it is cheap on a CPU and exact for any backend.

Variants: ``maml`` (second order, the scan's residuals stored), ``maml+remat`` (the inner step
rematerialised, ``meta.remat``), ``fomaml``, ``imaml`` (implicit gradient: the inner steps are
never differentiated).

    .venv/bin/python experiments/benchmarks/step_memory.py [--inner_steps 1,3,5,10,20]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import meta_step  # pylint: disable=wrong-import-position  # the reference shape and features

from mta_jax import bilevel  # pylint: disable=wrong-import-position
from mta_jax.models import registry  # pylint: disable=wrong-import-position
from mta_jax.scorer import Scorer, ScorerConfig  # pylint: disable=wrong-import-position

VARIANTS = {"maml": dict(algorithm="maml"), "maml+remat": dict(algorithm="maml", remat=True),
            "fomaml": dict(algorithm="fomaml"), "imaml": dict(algorithm="imaml")}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  for name, default in (("E", 8), ("N", 5), ("K", 2), ("Q", 3), ("Tq", 32), ("Tt", 64)):
    ap.add_argument(f"--{name}", type=int, default=default)
  ap.add_argument("--inner_steps", default="1,3,5,10,20")
  ap.add_argument("--variants", default=",".join(VARIANTS))
  ap.add_argument("--json_out", default="")
  a = ap.parse_args(argv)
  enc = registry.load()
  scorer = Scorer(ScorerConfig(n_top=1, adapt="top+head", temperature=0.05), enc.model)
  opt = bilevel.make_optimizer(bilevel.OptimConfig(lr=1e-4, warmup_steps=1, total_steps=10**6))
  from flax import nnx  # pylint: disable=import-outside-toplevel
  graphdef, params = enc.graphdef, enc.params
  lower = jax.jit(lambda ids, m: nnx.merge(graphdef, params).lower(ids, m, 5))
  feats = meta_step.make_features(lower, a, *meta_step.rand_batch(np.random.default_rng(0), a))
  rows = []
  print(f"| variant | inner steps | temp MiB | arguments MiB | outputs MiB |  ({jax.default_backend()},"
        f" {os.cpu_count()} CPUs, jax {jax.__version__})")
  print("| --- | --- | --- | --- | --- |")
  for variant in a.variants.split(","):
    for n in (int(s) for s in a.inner_steps.split(",")):
      cfg = bilevel.MetaConfig(inner_steps=n, inner_lr=0.01, track_adapted_support=False,
                               **VARIANTS[variant])
      state = jax.eval_shape(lambda c=cfg: bilevel.init_train_state(scorer, c, opt,
                                                                    jax.random.key(0)))
      step = bilevel.make_meta_train_step(scorer, cfg, opt)
      m = step.lower(state, feats, jax.random.key(0)).compile().memory_analysis()
      row = {"variant": variant, "inner_steps": n, "temp_bytes": m.temp_size_in_bytes,
             "argument_bytes": m.argument_size_in_bytes, "output_bytes": m.output_size_in_bytes}
      rows.append(row)
      mib = lambda b: f"{b / 2**20:.1f}"
      print(f"| {variant} | {n} | {mib(row['temp_bytes'])} | {mib(row['argument_bytes'])} | "
            f"{mib(row['output_bytes'])} |", flush=True)
  if a.json_out:
    pathlib.Path(a.json_out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
  main()
