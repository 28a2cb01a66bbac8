"""Computes the tables of the MTA-Tools dataset card (README.md) from the released JSONL.

    .venv/bin/python -m datasets_tfds.mta_tools.card [--no_encoder]

Prints markdown: per-domain tool and pair counts with their split, the style mix, the query
length distribution, and how hard the test split is: top-1 accuracy of random, BM25 and the
zero-shot pretrained encoder under the evaluator of RESULTS.md (``mta_jax.run_eval``: tasks of
5 unseen test tools, each test query against its gold tool and 4 distractors among the unseen
tools of its domain = SD, or of all domains = CD), mean ± std over episode seeds 0-4. The same
code computes the Random, BM25 and Base rows of RESULTS.md, so the numbers agree.
"""

from __future__ import annotations

import argparse
import collections

import numpy as np

from datasets_tfds.mta_tools import synthesize
from mta_jax import data, run_eval


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


def difficulty(ds: data.ToolDataset, with_encoder: bool = True,
               cache_dir: str = "workdirs/features") -> dict:
  """{method: {"sd"|"cd": run_eval.protocol result}} on the unseen test tools, 0-shot."""
  split = run_eval.split_for(ds, "test")
  spec = run_eval.EvalSpec(shots=("0shot",), full_pool=False)
  _, main_doc, view_rows = ds.documents(spec.n_views)
  scorers = {"random": (run_eval.random_score_fn(0), main_doc, view_rows),
             "BM25": (run_eval.bm25_score_fn(ds), main_doc, view_rows)}
  if with_encoder:
    from mta_jax import baselines  # pylint: disable=import-outside-toplevel
    fn, cache = baselines.base_score_fn(ds, cache_dir, n_views=spec.n_views)
    scorers["zero-shot MiniLM (Base)"] = (fn, cache.main_doc, cache.view_rows)
  out = {}
  for name, (fn, doc, views) in scorers.items():
    out[name] = {mode: run_eval.protocol(fn, ds, split, mode, 0, spec, doc, views)
                 for mode in ("sd", "cd")}
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
