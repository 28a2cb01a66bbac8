"""Benchmark: sentences per second of the pretrained encoder, with and without length buckets.

Workloads from MTA-Tools: 1,000 user queries of every style (every 9th), 1,000 short queries
(at most 32 tokens, the issue's "short queries") and the 155 tool documents. Each is
embedded ``--repeats`` times (after a warm-up that compiles every bucket) and the median is
reported. "Buckets" pads each length-sorted batch to the smallest of 16/32/64/128/256 tokens; "fixed" pads every batch to one length, the bucket of
the longest text of the whole workload (what an encoder without bucketing must do to compile
once).

    .venv/bin/python experiments/benchmarks/encode.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax

from mta_jax import data
from mta_jax.models import registry
from mta_jax.models import tokenizer as tokenizer_lib
from datasets_tfds.mta_tools import synthesize


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--batch_size", type=int, default=64)
  ap.add_argument("--workloads", default="queries,short,docs")
  a = ap.parse_args(argv)
  ds = data.from_jsonl(synthesize.DATA_DIR)
  queries = [q.text for q in ds.queries[::9]][:1000]
  docs = [t.document() for t in ds.tools]
  enc = registry.load()
  rows = []
  # Short queries: the first 1,000 of the dataset's queries that fit 32 tokens ([CLS]/[SEP] incl.).
  lengths = [len(r) for r in enc.tokenizer.encode([q.text for q in ds.queries])]
  short = [q.text for q, n in zip(ds.queries, lengths) if n <= 32][::5][:1000]
  workloads = {"queries": ("1,000 queries", queries), "short": ("1,000 short queries", short),
               "docs": ("155 tool documents", docs)}
  for key in a.workloads.split(","):
    name, texts = workloads[key]
    longest = tokenizer_lib.bucket_for(max(len(r) for r in enc.tokenizer.encode(texts)))
    for label, kw in (("buckets", {}), (f"fixed {longest}", {"fixed_length": longest})):
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
