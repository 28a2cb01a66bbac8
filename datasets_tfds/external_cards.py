"""The numbers of the external benchmarks' dataset cards, as markdown tables to paste into them.

    python -m datasets_tfds.external_cards --data_dir=/tmp/tfds [--datasets=metatool,api_bank]

Builds each dataset into ``data_dir`` if it is not there yet (``datasets_tfds.build``, raw files
from ``--manual_root/<folder>``), reads it back with ``mta_jax.data.load`` (``tfds.data_source``)
and prints, per dataset: the counts after conversion, what was not converted and why (from the
build's ``metadata.json``), and BM25 top-1 accuracy under the project's evaluation protocol
(``mta_jax.evaluation``: BM25 of ``mta_jax.bm25`` over each tool's document, corpus statistics
over all the dataset's tools; one episode per query per seed, seeds 0..4, mean ± std):

- SD 5-way: gold + 4 distractors from the gold's group. Only queries whose group has at least
  5 tools in the row's pool are scored (their number is given), so every episode is 5-way;
- CD 5-way: gold + 4 distractors from all tools of the row's pool;
- own: the source's own candidate list, where it has one (its mean size is given);
- full pool: every tool of the row's pool ranked (top-1, and MRR).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import pathlib
from typing import Callable

import numpy as np

from datasets_tfds import build as build_lib
from datasets_tfds import external_common as ec
from mta_jax import data
from mta_jax import per_query
from mta_jax import run_eval

DATASETS = ("metatool", "api_bank", "toolalpaca", "apibench")
N_WAY = 5


@dataclasses.dataclass
class Row:
  label: str
  queries: Callable[[data.Query], bool]  # which queries the row scores
  pool: Callable[[data.Tool], bool] = lambda t: True  # the tools distractors come from


ROWS = {
    "metatool": [
        Row("all 199 tools, all queries", lambda q: True),
        Row("test split: 50 unseen tools", lambda q: q.split == "test",
            lambda t: t.split == "test"),
    ],
    "api_bank": [
        Row("all records", lambda q: True),
        Row("without GetUserToken", lambda q: "GetUserToken" not in q.tags),
    ],
    "toolalpaca": [
        Row("eval_real", lambda q: "real" in q.tags),
        Row("eval_simulated", lambda q: "simulated" in q.tags),
        Row("both", lambda q: True),
    ],
    "apibench": [
        Row("huggingface", lambda q: q.id.startswith("apibench-huggingface-")),
        Row("tensorflowhub", lambda q: q.id.startswith("apibench-tensorflowhub-")),
        Row("torchhub", lambda q: q.id.startswith("apibench-torchhub-")),
        Row("all hubs", lambda q: True),
    ],
}


def _pct(result: dict | None) -> str:
  if result is None:
    return "n/a"
  return f"{100 * result['mean']:.1f} ± {100 * result['std']:.1f}"


def bm25_rows(ds: data.ToolDataset) -> list[dict]:
  """One dict of results per row of ``ROWS[ds.name]``."""
  score = run_eval.bm25_score_fn(ds)
  out = []
  for row in ROWS[ds.name]:
    rows = np.array([i for i, q in enumerate(ds.queries) if row.queries(q)], np.int32)
    pool = np.array([t.index for t in ds.tools if row.pool(t)], np.int32)
    sizes = collections.Counter(ds.tools[t].group for t in pool)
    sd_rows = [r for r in rows if sizes[ds.tools[ds.queries[r].tool].group] >= N_WAY]
    res = {"label": row.label, "n": len(rows), "pool": len(pool), "n_sd": len(sd_rows),
           "sd": per_query.episode_accuracy(score, ds, sd_rows, "sd", pool_tools=pool)
                 if sd_rows else None,
           "cd": per_query.episode_accuracy(score, ds, rows, "cd", pool_tools=pool),
           "own": None, "own_size": None}
    if all(ds.queries[r].candidates for r in rows):
      res["own"] = per_query.episode_accuracy(score, ds, rows, "own")
      res["own_size"] = float(np.mean([len(ds.queries[r].candidates) for r in rows]))
    cands = np.broadcast_to(pool, (len(rows), len(pool)))
    col = {int(t): i for i, t in enumerate(pool)}
    gold = np.array([col[ds.queries[r].tool] for r in rows])
    res["full"] = run_eval.ranking_metrics(per_query.score_candidates(score, rows, cands), gold)
    out.append(res)
  return out


def bm25_table(ds: data.ToolDataset) -> str:
  lines = ["| queries | n | SD 5-way (n scored) | CD 5-way | own list (mean size) | "
           "full pool: top-1 / MRR (size) |", "| --- | --- | --- | --- | --- | --- |"]
  for r in bm25_rows(ds):
    sd = f"{_pct(r['sd'])} ({r['n_sd']})" if r["sd"] else "n/a (0)"
    own = f"{_pct(r['own'])} ({r['own_size']:.1f})" if r["own"] else "n/a"
    full = f"{100 * r['full']['top1']:.1f} / {r['full']['mrr']:.3f} ({r['pool']})"
    lines.append(f"| {r['label']} | {r['n']} | {sd} | {_pct(r['cd'])} | {own} | {full} |")
  return "\n".join(lines)


def counts_table(ds: data.ToolDataset) -> str:
  splits = [s for s in data.SPLITS if any(t.split == s for t in ds.tools)]
  lines = ["| split | tools | queries | groups |", "| --- | --- | --- | --- |"]
  for s in splits + ["total"]:
    ts = [t for t in ds.tools if s in (t.split, "total")]
    qs = [q for q in ds.queries if s in (q.split, "total")]
    lines.append(f"| {s} | {len(ts)} | {len(qs)} | {len({t.group for t in ts})} |")
  sizes = np.array(sorted(collections.Counter(t.group for t in ds.tools).values()))
  lines.append("")
  lines.append(f"Group sizes (tools a group): min {sizes.min()}, median {np.median(sizes):g}, "
               f"max {sizes.max()}; groups with >= {N_WAY} tools: {(sizes >= N_WAY).sum()}, "
               f"holding {sizes[sizes >= N_WAY].sum()} tools.")
  tags = collections.Counter(tag for q in ds.queries for tag in q.tags)
  if tags:
    lines.append("Tags: " + ", ".join(f"`{k}` {v}" for k, v in sorted(tags.items())) + ".")
  return "\n".join(lines)


def report_table(meta: dict) -> str:
  lines = ["| not converted | records | e.g. |", "| --- | --- | --- |"]
  for reason, n in meta.get("dropped", {}).items():
    lines.append(f"| {reason} | {n} | {', '.join(meta['dropped_examples'].get(reason, []))} |")
  if len(lines) == 2:
    lines.append("| (none) | 0 | |")
  lines.append("")
  lines.append("Conversion notes: " + "; ".join(f"{k}: {v}" for k, v in
                                                  meta.get("notes", {}).items()))
  return "\n".join(lines)


def card(name: str, data_dir: pathlib.Path) -> str:
  ds = data.load(name, data_dir)
  meta = ec.read_metadata(data_dir, name, "qa")
  return "\n\n".join([f"## {name}", "### Counts", counts_table(ds),
                      "### Not converted", report_table(meta),
                      "### BM25 top-1 (%)", bm25_table(ds)])


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
  parser.add_argument("--data_dir", required=True, type=pathlib.Path)
  parser.add_argument("--manual_root", type=pathlib.Path, default=ec.DEFAULT_EXTERNAL_ROOT)
  parser.add_argument("--datasets", default=",".join(DATASETS))
  args = parser.parse_args(argv)
  data_dir = args.data_dir.resolve()
  for name in args.datasets.split(","):
    build_lib.build(name, str(data_dir), args.manual_root)
    print(card(name, data_dir), end="\n\n", flush=True)


if __name__ == "__main__":
  main()
