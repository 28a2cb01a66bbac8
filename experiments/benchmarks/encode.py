"""Benchmark: sentences per second of the pretrained encoder, with and without length buckets.

Two workloads from MTA-Tools: 1,000 short user queries and the 155 tool documents. Each is
embedded ``--repeats`` times (after a warm-up that compiles every bucket) and the median is
reported. "Buckets" pads each length-sorted batch to the smallest of 16/32/64/128/256 tokens;
"fixed" pads everything to 256 (what an encoder without bucketing does).

    .venv/bin/python experiments/benchmarks/encode.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax

from mta_jax import data
from mta_jax.models import TextEncoder
from datasets_tfds.mta_tools import synthesize


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--batch_size", type=int, default=64)
  a = ap.parse_args(argv)
  ds = data.from_jsonl(synthesize.DATA_DIR)
  queries = [q.text for q in ds.queries[::9]][:1000]
  docs = [t.document() for t in ds.tools]
  enc = TextEncoder.pretrained()
  rows = []
  for name, texts in (("1,000 queries", queries), ("155 tool documents", docs)):
    for label, kw in (("buckets", {}), ("fixed 256", {"bucketing": False})):
      enc.embed(texts, batch_size=a.batch_size, **kw)  # compile every shape first
      ts = []
      for _ in range(a.repeats):
        t0 = time.perf_counter()
        enc.embed(texts, batch_size=a.batch_size, **kw)
        ts.append(time.perf_counter() - t0)
      med = statistics.median(ts)
      rows.append((name, label, len(texts), med, len(texts) / med))
      print(f"{name:20s} {label:10s} {len(texts) / med:8.1f} sentences/s", flush=True)
  print(f"\njax {jax.__version__}, {jax.default_backend()}, batch {a.batch_size}, "
        f"median of {a.repeats}")
  print("| workload | padding | texts | median s | sentences/s |\n|---|---|---|---|---|")
  for name, label, n, med, rate in rows:
    print(f"| {name} | {label} | {n} | {med:.3f} | {rate:.1f} |")
  return rows


if __name__ == "__main__":
  main()
