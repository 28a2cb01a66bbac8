"""Computes the tables of the MTA-Tools dataset card (README.md) from the released JSONL.

    .venv/bin/python -m datasets_tfds.mta_tools.card [--no_encoder]

Prints markdown: per-domain tool and pair counts with their split, the style mix, the query
length distribution, and how hard the test split is: top-1 accuracy of random, BM25 and the
zero-shot pretrained encoder on 5-candidate episodes (gold + 4 distractors from the gold tool's
domain = SD, from all 155 tools = CD), mean ± std over episode seeds 0-4.
"""

from __future__ import annotations

import argparse
import collections

import numpy as np

from datasets_tfds.mta_tools import synthesize
from mta_jax import data, evaluation


def counts_table(ds: data.ToolDataset) -> str:
  rows = ["| domain | tools (train / val / test) | pairs | pairs train / val / test |",
          "|---|---|---|---|"]
  tot = collections.Counter()
  for dom in ds.group_ids:
    tools = [t for t in ds.tools if t.group == dom]
    ts = collections.Counter(t.split for t in tools)
    qs = collections.Counter(q.split for q in ds.queries if ds.tools[q.tool].group == dom)
    tot.update({f"t_{k}": v for k, v in ts.items()})
    tot.update({f"q_{k}": v for k, v in qs.items()})
    rows.append(f"| {dom} | {len(tools)} ({ts['train']} / {ts['validation']} / {ts['test']}) | "
                f"{sum(qs.values())} | {qs['train']} / {qs['validation']} / {qs['test']} |")
  rows.append(f"| **all** | {len(ds.tools)} ({tot['t_train']} / {tot['t_validation']} / "
              f"{tot['t_test']}) | {len(ds.queries)} | {tot['q_train']} / {tot['q_validation']}"
              f" / {tot['q_test']} |")
  return "\n".join(rows)


def style_table(ds: data.ToolDataset) -> str:
  c = collections.Counter(q.style for q in ds.queries)
  rows = ["| style | pairs | share |", "|---|---|---|"]
  rows += [f"| {s} | {n} | {100 * n / len(ds.queries):.1f}% |" for s, n in c.most_common()]
  return "\n".join(rows)


def length_table(ds: data.ToolDataset) -> str:
  words = np.array([len(q.text.split()) for q in ds.queries])
  per_tool = collections.Counter(q.tool for q in ds.queries)
  p = np.percentile(words, [5, 25, 50, 75, 95])
  return ("| words per query | min | p5 | p25 | median | p75 | p95 | max |\n|---|---|---|---|---|---|"
          f"---|---|\n| | {words.min()} | {p[0]:.0f} | {p[1]:.0f} | {p[2]:.0f} | {p[3]:.0f} | "
          f"{p[4]:.0f} | {words.max()} |\n\nPairs per tool: min {min(per_tool.values())}, median "
          f"{int(np.median(list(per_tool.values())))}, max {max(per_tool.values())}.")


def difficulty(ds: data.ToolDataset, with_encoder: bool = True) -> dict:
  rows = ds.query_indices("test")
  scorers = {"random": evaluation.random_scorer(0), "BM25": evaluation.bm25_scorer(ds)}
  if with_encoder:
    from mta_jax.models import TextEncoder  # pylint: disable=import-outside-toplevel
    enc = TextEncoder.pretrained()
    q = enc.embed([query.text for query in ds.queries], progress=True)
    t = enc.embed([tool.document() for tool in ds.tools])
    scorers["zero-shot MiniLM (Base)"] = evaluation.matrix_scorer(q, t)
  out = {}
  for name, fn in scorers.items():
    out[name] = {mode: evaluation.episode_accuracy(fn, ds, rows, mode) for mode in ("sd", "cd")}
  return out


def difficulty_table(res: dict) -> str:
  rows = ["| method | SD (5-way) | CD (5-way) |", "|---|---|---|"]
  for name, r in res.items():
    rows.append(f"| {name} | {100 * r['sd']['mean']:.2f} ± {100 * r['sd']['std']:.2f} | "
                f"{100 * r['cd']['mean']:.2f} ± {100 * r['cd']['std']:.2f} |")
  return "\n".join(rows)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--no_encoder", action="store_true")
  a = ap.parse_args(argv)
  ds = data.from_jsonl(synthesize.DATA_DIR)
  print("## Counts\n\n" + counts_table(ds))
  print("\n## Styles\n\n" + style_table(ds))
  print("\n## Query length\n\n" + length_table(ds))
  print("\n## Difficulty (test split: unseen tools)\n\n" + difficulty_table(
      difficulty(ds, not a.no_encoder)))


if __name__ == "__main__":
  main()
