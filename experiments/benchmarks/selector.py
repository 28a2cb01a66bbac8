"""Benchmark: ToolSelector speed with the 155 MTA-Tools tools cached.

For each selector kind:
- ``set_tools``: first call (documents through the encoder, documentation-only adaptation,
  single-query warm-up) and a repeat call (the per-toolbox cache);
- batched: ``rank`` over 1,000 MTA-Tools queries (every 9th), queries/s;
- single query: ``rank`` of one query at a time over 200 queries, p50 and p95 latency, with the
  cached documentation-only adaptation (no support examples), top-5 over all 155 tools.
Every timing is repeated ``--repeats`` times after a warm-up pass that compiles every bucket;
the medians over repeats are reported.

Kinds: ``zero_shot`` (the pretrained encoder, no adaptation); ``mta`` (the CPU training default:
head adapted on frozen sentence embeddings, MAML 3 inner steps); ``mta_top`` (the top layer and
the head adapted). ``mta`` kinds use freshly initialised meta-parameters: a trained checkpoint of
the same config does the same work (``--checkpoint`` benchmarks one).

    .venv/bin/python experiments/benchmarks/selector.py [--repeats 5] [--kinds zero_shot,mta]
"""

from __future__ import annotations

# Named selector.py, not select.py (as issue 7 suggested): a script's folder comes first on
# sys.path, and a select.py there shadows the standard library's ``select`` (which subprocess,
# and so JAX, imports) for every benchmark in this folder.
import argparse
import os
import sys
import json
import pathlib
import statistics
import time

import jax
import numpy as np

from mta_jax import bilevel, data
from mta_jax.models import TextEncoder
from mta_jax.scorer import Scorer, ScorerConfig
from mta_jax.selector import ToolSelector, plan_batches

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "datasets_tfds" / "mta_tools" / "data"
KINDS = {
    "mta": (ScorerConfig(n_top=0, adapt="head"),
            bilevel.MetaConfig(inner_steps=3, inner_lr=0.05, learn_inner_lr="per_tensor")),
    "mta_top": (ScorerConfig(n_top=1, adapt="top+head"),
                bilevel.MetaConfig(inner_steps=3, inner_lr=0.05, learn_inner_lr="per_tensor")),
}


def make_selector(kind: str, encoder: TextEncoder, checkpoint: str = "") -> ToolSelector:
  if kind == "zero_shot":
    return ToolSelector.pretrained(encoder=encoder)
  if kind == "checkpoint":
    return ToolSelector.load(checkpoint, encoder=encoder)
  scfg, mcfg = KINDS[kind]
  meta = bilevel.init_meta(Scorer(scfg, encoder.model), mcfg, jax.random.key(0))
  return ToolSelector.from_meta(scfg, mcfg, meta, encoder=encoder)


def padded_flops(sel: ToolSelector, texts) -> float:
  """Matmul FLOPs of the encoder over the padded batches ``rank`` runs (to compare the achieved
  rate with the machine's ceiling, ~125-135 GFLOP/s for a BERT layer on a quiet 2-core CPU)."""
  c = sel.encoder.cfg
  lengths = np.array([len(r) for r in sel.encoder.tokenizer.encode(texts)])
  total = 0.0
  for _, b, t in plan_batches(lengths, sel.cfg):
    per_seq = 2 * t * (4 * c.hidden_size ** 2 + 2 * c.hidden_size * c.intermediate_size)
    total += b * c.num_layers * (per_seq + 4 * t * t * c.hidden_size)
  return total


def bench(kind, encoder, tools, queries, singles, repeats, checkpoint=""):
  sel = make_selector(kind, encoder, checkpoint)
  t0 = time.perf_counter()
  sel.set_tools(tools)
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  sel.set_tools(tools)
  cached = time.perf_counter() - t0
  sel.rank(queries)  # compile every batched bucket
  for q in singles:
    sel.rank(q)  # and every single-query bucket
  rates, p50s, p95s = [], [], []
  for _ in range(repeats):
    t0 = time.perf_counter()
    sel.rank(queries)
    rates.append(len(queries) / (time.perf_counter() - t0))
    lat = []
    for q in singles:
      t0 = time.perf_counter()
      sel.rank(q)
      lat.append(time.perf_counter() - t0)
    p50s.append(1e3 * float(np.percentile(lat, 50)))
    p95s.append(1e3 * float(np.percentile(lat, 95)))
  gflops = padded_flops(sel, queries) * statistics.median(rates) / len(queries) / 1e9
  row = {"kind": kind, "set_tools_s": first, "set_tools_cached_s": cached, "gflops": gflops,
         "queries_per_s": statistics.median(rates), "p50_ms": statistics.median(p50s),
         "p95_ms": statistics.median(p95s), "runs_queries_per_s": rates, "runs_p50_ms": p50s}
  print(f"{kind:10s} set_tools {first:6.2f} s (cached {cached * 1e3:.1f} ms)  batched "
        f"{row['queries_per_s']:6.1f} q/s ({gflops:.0f} GFLOP/s)  single p50 "
        f"{row['p50_ms']:5.1f} ms  p95 {row['p95_ms']:5.1f} ms   runs: "
        f"{', '.join(f'{r:.0f}' for r in rates)} q/s", flush=True)
  return row


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--kinds", default="zero_shot,mta,mta_top")
  ap.add_argument("--checkpoint", default="", help="also benchmark this training workdir")
  ap.add_argument("--n_batched", type=int, default=1000)
  ap.add_argument("--n_single", type=int, default=200)
  ap.add_argument("--json_out", default="")
  a = ap.parse_args(argv)
  ds = data.from_jsonl(DATA)
  tools = [{"name": t.name, "description": t.description, "parameters": t.parameters}
           for t in ds.tools]
  queries = [q.text for q in ds.queries[::9]][:a.n_batched]
  singles = [q.text for q in ds.queries[4::47]][:a.n_single]
  encoder = TextEncoder.pretrained()
  kinds = [k for k in a.kinds.split(",") if k] + (["checkpoint"] if a.checkpoint else [])
  rows = [bench(k, encoder, tools, queries, singles, a.repeats, a.checkpoint) for k in kinds]
  load = os.getloadavg()
  print(f"\njax {jax.__version__}, {jax.default_backend()}, {os.cpu_count()} CPUs, load average "
        f"{load[0]:.1f}/{load[1]:.1f}; {len(tools)} tools, {len(queries)} batched queries, "
        f"{len(singles)} single queries, median of {a.repeats} runs")
  print("| selector | set_tools (first) | set_tools (cached) | batched queries/s | encoder "
        "GFLOP/s | single p50 | single p95 |\n|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['kind']} | {r['set_tools_s']:.2f} s | {r['set_tools_cached_s'] * 1e3:.1f} ms | "
          f"{r['queries_per_s']:.0f} | {r['gflops']:.0f} | {r['p50_ms']:.1f} ms | "
          f"{r['p95_ms']:.1f} ms |")
  if a.json_out:
    pathlib.Path(a.json_out).write_text(json.dumps({"rows": rows, "load": load}, indent=1))
  return rows


if __name__ == "__main__":
  main()
