"""Computes the tables of the MTA-Tools dataset card (README.md) from the released JSONL.

    .venv/bin/python -m datasets_tfds.mta_tools.card [--version=1.0.0|1.1.0|compare]
        [--no_encoder] [--cache_dir=workdirs/features]

Prints markdown: per-domain tool and pair counts with their split, the style mix, the query
length distribution, and how hard the test split is: top-1 accuracy of random, BM25 and the
zero-shot pretrained encoder under the evaluator of RESULTS.md (``mta_jax.run_eval``: tasks of
5 unseen test tools, each test query against its gold tool and 4 distractors among the unseen
tools of its domain = SD, or of all domains = CD), mean ± std over episode seeds 0-4. The same
code computes the Random, BM25 and Base rows of RESULTS.md, so the numbers agree.

``--version=compare`` prints the quality table of issue 21 with 1.0.0 and 1.1.0 side by side
(``quality``: slot coherence, schema validity, date grounding, keyword shortcuts, phrasing
variety, labels, the hand-read sample), the test accuracy on the test tools that are antonyms
or variants of a training tool and on the rest, and the appendix: the seeded 280-query read
sample of 1.1.0 with the verdict recorded in ``sources/1.1.0/read_sample.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re

import numpy as np

from datasets_tfds.mta_tools import check_sources as cs
from datasets_tfds.mta_tools import synthesize, validate
from mta_jax import bm25, data, run_eval

READ_PER_DOMAIN = 40
# The 1.0.0 read (issue 21): 280 queries, 40 a domain, 13 clearly templated or broken.
READ_1_0 = {"n": 280, "broken": 13, "note": "issue 21's read of 1.0.0 (its own seeded sample)"}


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


def _scorers(ds: data.ToolDataset, with_encoder: bool, cache_dir: str, spec):
  _, main_doc, view_rows = ds.documents(spec.n_views)
  scorers = {"random": (run_eval.random_score_fn(0), main_doc, view_rows),
             "BM25": (run_eval.bm25_score_fn(ds), main_doc, view_rows)}
  if with_encoder:
    from mta_jax import baselines  # pylint: disable=import-outside-toplevel
    fn, cache = baselines.base_score_fn(ds, cache_dir, n_views=spec.n_views)
    scorers["zero-shot MiniLM (Base)"] = (fn, cache.main_doc, cache.view_rows)
  return scorers


def difficulty(ds: data.ToolDataset, with_encoder: bool = True,
               cache_dir: str = "workdirs/features", subsets: dict | None = None) -> dict:
  """{method: {"sd"|"cd": run_eval.protocol result}} on the unseen test tools, 0-shot; with
  ``subsets`` ({name: tool names}), also {method: {"subsets": {name: {"sd"|"cd": mean, std}}}}
  from the same tasks and tie-breaks (the protocol's hits, grouped by the gold tool)."""
  split = run_eval.split_for(ds, "test")
  spec = run_eval.EvalSpec(shots=("0shot",), full_pool=False)
  out = {}
  for name, (fn, doc, views) in _scorers(ds, with_encoder, cache_dir, spec).items():
    out[name] = {mode: run_eval.protocol(fn, ds, split, mode, 0, spec, doc, views)
                 for mode in ("sd", "cd")}
    if subsets:
      out[name]["subsets"] = subset_accuracy(fn, ds, split, spec, doc, views, subsets)
  return out


def subset_accuracy(fn, ds, split, spec, doc, views, subsets: dict) -> dict:
  """{subset: {mode: (mean, std)}}: ``run_eval.protocol``'s per-seed hits (same rng, tasks
  and tie-breaks) averaged over the queries whose gold tool is in the subset."""
  of = {n: s for s, names in subsets.items() for n in names}
  res: dict = {s: {} for s in subsets}
  for mode in ("sd", "cd"):
    per = {s: [] for s in subsets}
    for seed in spec.seeds:
      rng = np.random.default_rng([seed, 0, 0 if mode == "sd" else 1])
      tasks = run_eval.make_tasks(rng, ds, split, mode, spec.n_way, 0, doc, views, spec.n_views)
      scores, labels, rows, _ = run_eval.task_scores(fn, tasks, spec.batch)
      hits = run_eval._hits(rng, scores, labels)  # pylint: disable=protected-access
      by = collections.defaultdict(list)
      for r, h in zip(rows, hits):
        by[of.get(ds.tools[ds.queries[r].tool].name)].append(float(h))
      for s in subsets:
        per[s].append(float(np.mean(by[s])) if by[s] else float("nan"))
    for s in subsets:
      res[s][mode] = (float(np.mean(per[s])), float(np.std(per[s])))
  return res


def difficulty_table(res: dict) -> str:
  rows = ["| method | SD (5-way) | CD (5-way) |", "|---|---|---|"]
  for name, r in res.items():
    rows.append(f"| {name} | {100 * r['sd']['mean']:.2f} ± {100 * r['sd']['std']:.2f} | "
                f"{100 * r['cd']['mean']:.2f} ± {100 * r['cd']['std']:.2f} |")
  return "\n".join(rows)


# ---------------------------------------------------------------- issue 21: 1.0 vs 1.1

def _rows(version: str) -> tuple[list[dict], list[dict], dict]:
  d = synthesize.data_dir(version)
  read = lambda f: [json.loads(l) for l in (d / f).read_text("utf-8").splitlines() if l.strip()]
  meta = d / "metadata.json"
  return read("tools.jsonl"), read("qa.jsonl"), (
      json.loads(meta.read_text("utf-8")) if meta.exists() else {})


def _template_regex(text: str) -> re.Pattern:
  parts = re.split(r"(\{~?\w+\})", text)
  body = "".join(".+?" if p.startswith("{") else re.escape(p) for p in parts)
  return re.compile("^" + re.sub(r"(\\ )+", r"\\s+", body).strip() + "$", re.DOTALL)


def typo_rows_without_typo(version: str, tools: list[dict], qa: list[dict]) -> int:
  """``typo`` rows whose query equals their clean form. 1.1.0+ keeps it (``typo_of``); for
  1.0.0 the query is matched against its template with the slots left free."""
  if version != "1.0.0":
    return sum(1 for q in qa if q["style"] == "typo" and q.get("typo_of") in (None, q["query"]))
  domains, _ = synthesize.load_sources(version)
  templates = {t["name"]: t["templates"] for d in domains for t in d["tools"]}
  return sum(1 for q in qa if q["style"] == "typo" and _template_regex(
      " ".join(templates[q["tool"]][q["template"]]["text"].split())).match(q["query"]))


def bm25_same_domain(tools: list[dict], qa: list[dict], seed: int = 0) -> tuple[float, float]:
  """(top-1 among all the domain's tools, 5-way top-1 against 4 random same-domain tools),
  over every query; BM25 fitted on the domain's tool documents; ties share the credit."""
  top, five = [], []
  rng = np.random.default_rng(seed)
  for dom in sorted({t["domain"] for t in tools}):
    dt = [t for t in tools if t["domain"] == dom]
    pos = {t["name"]: i for i, t in enumerate(dt)}
    qs = [q for q in qa if q["tool"] in pos]
    s = bm25.BM25([validate.tool_document(t) for t in dt]).score_matrix([q["query"] for q in qs])
    gold = np.array([pos[q["tool"]] for q in qs])
    top += list(bm25.top1_credit(s, gold))
    for i, g in enumerate(gold):
      others = rng.choice([j for j in range(len(dt)) if j != g], 4, replace=False)
      five.append(float(bm25.top1_credit(s[i, [g, *others]][None], np.array([0]))[0]))
  return float(np.mean(top)), float(np.mean(five))


def read_sample(version: str, qa: list[dict]) -> list[dict]:
  """The seeded hand-read sample: 40 queries a domain (280), in id order within a domain."""
  rng = random.Random(f"read-sample/{version}")
  out = []
  for dom in sorted({q["domain"] for q in qa}):
    rows = [q for q in qa if q["domain"] == dom]
    out += sorted(rng.sample(rows, READ_PER_DOMAIN), key=lambda q: q["id"])
  return out


def read_verdicts(version: str) -> dict | None:
  path = synthesize.sources_dir(version) / "read_sample.json"
  return json.loads(path.read_text("utf-8")) if version != "1.0.0" and path.exists() else None


def quality(version: str) -> dict:
  """Every measure of issue 21's table that needs no encoder, for one release."""
  tools, qa, meta = _rows(version)
  by_name = {t["name"]: t for t in tools}
  ref = meta.get("reference_date")
  defects = collections.Counter()
  n_dates = 0
  for q in qa:
    kinds = {k for k, _, _ in validate.row_defects(q, by_name[q["tool"]], ref)}
    defects.update(kinds)
    n_dates += sum(1 for v in q["arguments"].values() if validate.dates.is_date_value(v))
  # Count dates one by one (a call may have several).
  bad_dates = sum(1 for q in qa for k, f, _ in validate.row_defects(q, by_name[q["tool"]], ref)
                  if k == "date")
  top1, five = bm25_same_domain(tools, qa)
  out = {"pairs": len(qa), "mixed_paths": defects["mixed_paths"], "pace": defects["pace"],
         "schema_invalid": defects["schema"], "date_args": n_dates, "dates_underivable": bad_dates,
         "bm25_top1": top1, "bm25_5way": five,
         "queries_per_template": validate.queries_per_template(qa),
         "distinct_3": validate.distinct_3([q["query"] for q in qa]),
         "typo_rows": sum(q["style"] == "typo" for q in qa),
         "typo_without_typo": typo_rows_without_typo(version, tools, qa),
         "doubled_articles": defects["doubled_article"],
         "templates_per_tool": len({(q["tool"], q["template"]) for q in qa}) / len(tools),
         "indirect_share": sum(q["style"] == "indirect" for q in qa) / len(qa)}
  verdicts = read_verdicts(version)
  if verdicts:
    sample = read_sample(version, qa)
    ids = {q["id"] for q in sample}
    broken = {i: r for i, r in verdicts["broken"].items() if i in ids}
    out["read"] = {"n": len(sample), "broken": len(broken)}
  elif version == "1.0.0":
    out["read"] = dict(READ_1_0)
  return out


def _pct(x: float) -> str:
  return f"{100 * x:.1f}%"


def compare_table(q0: dict, q1: dict, base: dict | None = None) -> str:
  """Issue 21's table: measure | 1.0.0 | 1.1.0 | target | met."""
  def read(q):
    r = q.get("read")
    return f"{_pct(r['broken'] / r['n'])} ({r['broken']}/{r['n']})" if r else "not read"
  rows = [
      ("clearly templated or broken, 280 queries read (seeded sample; 1.1.0's in the appendix)",
       read(q0) + " [a]", read(q1), "<= 1%",
       q1.get("read") and q1["read"]["broken"] / q1["read"]["n"] <= 0.01),
      ("calls mixing Windows and POSIX paths / impossible workout paces",
       f"{q0['mixed_paths']} / {q0['pace']}", f"{q1['mixed_paths']} / {q1['pace']}", "0 / 0",
       q1["mixed_paths"] == 0 and q1["pace"] == 0),
      ("gold calls invalid against their tool's schema", str(q0["schema_invalid"]),
       str(q1["schema_invalid"]), "0", q1["schema_invalid"] == 0),
      ("date arguments not derivable from query + reference date",
       f"{_pct(q0['dates_underivable'] / q0['date_args'])} ({q0['dates_underivable']}/"
       f"{q0['date_args']}; no reference date)",
       f"{_pct(q1['dates_underivable'] / q1['date_args'])} ({q1['dates_underivable']}/"
       f"{q1['date_args']})", "0%", q1["dates_underivable"] == 0),
      ("BM25 top-1 within a domain (all queries, all tools of the domain)",
       _pct(q0["bm25_top1"]), _pct(q1["bm25_top1"]), "<= 45%", q1["bm25_top1"] <= 0.45),
      ("BM25 5-way same-domain (all queries, 4 random same-domain distractors)",
       _pct(q0["bm25_5way"]), _pct(q1["bm25_5way"]), "<= 65%", q1["bm25_5way"] <= 0.65),
      ("queries per (realized) template", f"{q0['queries_per_template']:.2f}",
       f"{q1['queries_per_template']:.2f}", "<= 1.5", q1["queries_per_template"] <= 1.5),
      ("distinct-3 (5,000-query seeded sample)", f"{q0['distinct_3']:.3f}",
       f"{q1['distinct_3']:.3f}", ">= 0.65", q1["distinct_3"] >= 0.65),
      ("`typo` rows without a typo", f"{q0['typo_without_typo']} of {q0['typo_rows']}",
       f"{q1['typo_without_typo']} of {q1['typo_rows']}", "0", q1["typo_without_typo"] == 0),
      ("doubled articles (\"my the\", \"a a\")", str(q0["doubled_articles"]),
       str(q1["doubled_articles"]), "0", q1["doubled_articles"] == 0),
  ]
  if base:
    sd0, sd1 = base["1.0.0"], base["1.1.0"]
    rows.append(("zero-shot MiniLM 5-way SD on test tools", f"{100 * sd0:.2f}",
                 f"{100 * sd1:.2f}", "<= 88 (not easier)", 100 * sd1 <= 88))
  out = ["| measure | 1.0.0 | 1.1.0 | target | met |", "|---|---|---|---|---|"]
  out += [f"| {m} | {a} | {b} | {t} | {'yes' if ok else '**no**'} |" for m, a, b, t, ok in rows]
  return "\n".join(out)


def subset_table(res0: dict, res1: dict) -> str:
  """Test accuracy (SD / CD, 0-shot) on the antonym-or-variant test tools and on the rest."""
  out = ["| method | release | antonym or variant of a training tool (SD / CD) | other test "
         "tools (SD / CD) |", "|---|---|---|---|"]
  for name in res1:
    for version, res in (("1.0.0", res0), ("1.1.0", res1)):
      s = res[name]["subsets"]
      cell = lambda k: (f"{100 * s[k]['sd'][0]:.2f} ± {100 * s[k]['sd'][1]:.2f} / "
                        f"{100 * s[k]['cd'][0]:.2f} ± {100 * s[k]['cd'][1]:.2f}")
      out.append(f"| {name} | {version} | {cell('antonym_or_variant')} | {cell('other')} |")
  return "\n".join(out)


def appendix(version: str = "1.1.0") -> str:
  """The seeded read sample with each query's verdict (ok, or the defect seen)."""
  _, qa, _ = _rows(version)
  verdicts = read_verdicts(version) or {"broken": {}}
  lines = [f"Seeded sample: `random.Random('read-sample/{version}')`, {READ_PER_DOMAIN} queries "
           f"a domain; each was read by hand. Verdicts: `sources/{version}/read_sample.json`.",
           "", "| id | query | verdict |", "|---|---|---|"]
  for q in read_sample(version, qa):
    v = verdicts["broken"].get(q["id"])
    lines.append(f"| {q['id']} | {q['query'].replace('|', '/')} | "
                 f"{'**broken**: ' + v if v else 'ok'} |")
  return "\n".join(lines)


def compare(with_encoder: bool, cache_dir: str) -> str:
  q0, q1 = quality("1.0.0"), quality("1.1.0")
  meta = _rows("1.1.0")[2]
  subsets = meta["test_subsets"]
  res = {v: difficulty(data.from_jsonl(synthesize.data_dir(v)), with_encoder, cache_dir, subsets)
         for v in ("1.0.0", "1.1.0")}
  base_key = "zero-shot MiniLM (Base)"
  base = {v: r[base_key]["sd"]["mean"] for v, r in res.items()} if with_encoder else None
  parts = ["## 1.0.0 vs 1.1.0 (issue 21)", "", compare_table(q0, q1, base), "",
           f"[a] {READ_1_0['note']}; 1.0.0 was not re-read for this table. Measures: "
           "defects are counted by `validate.row_defects` over every pair (paths: a call with "
           "both a Windows and a POSIX path; pace: minutes per km outside the activity's "
           "plausible range; schema: an argument outside the schema, of the wrong type, or a "
           "required one missing; dates: an ISO date argument not among the dates the query "
           "denotes under `dates.py`'s rules, 1.0.0 having no reference date). BM25: fitted on "
           "the domain's tool documents, every query against all tools of its domain (top-1) "
           "and against its gold tool and 4 random same-domain tools (5-way, seed 0), ties "
           "sharing the credit. Queries per template: pairs / distinct (tool, realized template "
           "after the paraphrase rules). Distinct-3: distinct word trigrams / all, over a "
           "seeded sample of 5,000 queries. MiniLM: the evaluator's Base row (SD, 0-shot, "
           "seeds 0-4) on the 40 unseen test tools.", "",
           f"Reference date of 1.1.0: {meta['reference_date']} (a Monday). Templates per tool "
           f"(authored, used): {q0['templates_per_tool']:.1f} vs {q1['templates_per_tool']:.1f}; "
           f"indirect share {_pct(q0['indirect_share'])} vs {_pct(q1['indirect_share'])}.",
           "", "## Difficulty of 1.1.0 (test split: unseen tools)", "",
           difficulty_table({k: v for k, v in res["1.1.0"].items()}), "",
           "## Test tools that are antonyms or variants of a training tool", "",
           f"Antonym or variant ({len(subsets['antonym_or_variant'])}): "
           + ", ".join(f"`{n}`" for n in subsets["antonym_or_variant"])
           + f"; other test tools: {len(subsets['other'])}.", "",
           subset_table(res["1.0.0"], res["1.1.0"]), "",
           "## Appendix: the 280 queries of 1.1.0 read by hand", "", appendix("1.1.0")]
  return "\n".join(parts)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--no_encoder", action="store_true")
  ap.add_argument("--version", default=synthesize.DEFAULT_VERSION,
                  choices=synthesize.VERSIONS + ("compare",))
  ap.add_argument("--cache_dir", default="workdirs/features")
  a = ap.parse_args(argv)
  if a.version == "compare":
    print(compare(not a.no_encoder, a.cache_dir))
    return
  ds = data.from_jsonl(synthesize.data_dir(a.version))
  print("## Counts\n\n" + counts_table(ds))
  print("\n## Styles\n\n" + style_table(ds))
  print("\n## Query length\n\n" + length_table(ds))
  print("\n## Difficulty (test split: unseen tools)\n\n" + difficulty_table(
      difficulty(ds, not a.no_encoder, a.cache_dir)))


if __name__ == "__main__":
  main()
