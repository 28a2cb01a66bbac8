"""Benchmark: episodes sampled per second (numpy index arrays), on MTA-Tools' seen tools.

The issue's bar: sampling must never show in a profile, at least 10,000 episodes/s.

    .venv/bin/python experiments/benchmarks/episodes.py
"""

import statistics
import time

import numpy as np

from datasets_tfds.mta_tools import synthesize
from mta_jax import data, episodes


def main():
  ds = data.from_jsonl(synthesize.DATA_DIR)
  _, main_doc, views = ds.documents(n_views=4)
  pool = ds.pool(ds.tool_indices("train"), main_doc, views, query_split="train")
  print("| mode | meta-batch | episodes/s (median of 7) |\n|---|---|---|")
  for mode in ("sd", "cd"):
    spec = episodes.EpisodeSpec(n_way=5, k_shot=2, q_query=3, n_views=4, mode=mode)
    spec.validate(pool)
    for batch in (8, 64):
      rng = np.random.default_rng(0)
      rates = []
      for _ in range(7):
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.5:
          episodes.sample_episodes(rng, pool, spec, batch)
          n += batch
        rates.append(n / (time.perf_counter() - t0))
      print(f"| {mode} | {batch} | {statistics.median(rates):,.0f} |")


if __name__ == "__main__":
  main()
