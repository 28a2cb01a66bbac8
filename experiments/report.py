r"""Collects ``eval.json`` files into RESULTS.md (the paper's table) and PNG plots.

    python experiments/report.py --workdirs='workdirs/reproduce/*' --out=RESULTS.md

    python experiments/report.py --workdirs='workdirs/reproduce/*' --out=/tmp/R.md \
        --compare=MTA,SFT

Rows with several runs (training seeds) show mean ± std over the runs' means; a row with one
run shows mean ± std over its episode seeds. Cells of datasets that are not built say so.

``--compare=ROW_A,ROW_B`` (repeatable) prints, and adds to the report, a paired comparison of two
rows on the same queries and episode seeds: per protocol and dataset, each query's accuracy over
the seeds (averaged over a row's runs), the mean difference A - B and its 95% paired-bootstrap
interval over queries (``mta_jax.paired``; needs eval.json files written with per-query hits,
``evaluate.py --per_query_shots``).
"""

import collections
import glob
import json
import os
import pathlib
import re

from absl import app, flags

import _cli  # experiments/_cli.py: git_commit
from mta_jax import algorithms, paired

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Workdirs (globs allowed) holding eval.json.")
_OUT = flags.DEFINE_string("out", "RESULTS.md", "Markdown file to write.")
_PLOTS = flags.DEFINE_string("plots_dir", "results", "Folder for the PNG plots (next to --out).")
_TITLE = flags.DEFINE_string("title", "Results", "Heading of the report.")
_NOTE = flags.DEFINE_string("note", "", "A paragraph under the heading (e.g. which config).")
_COMPARE = flags.DEFINE_multi_string("compare", [], "ROW_A,ROW_B (or 'ROW_A vs ROW_B'): paired "
                                     "bootstrap of A - B.")
_APPEND = flags.DEFINE_list("append", [], "Markdown reports appended as sections of this one "
                            "(e.g. results/ablation/ABLATION.md; headings one level down, image "
                            "links made relative to --out).")
_N_BOOT = flags.DEFINE_integer("n_boot", 10_000, "Bootstrap resamplings for --compare.",
                               lower_bound=100)
flags.mark_flag_as_required("workdirs")

# Baselines, then every trained algorithm in the table's order (mta_jax.algorithms), then variants.
ORDER = (["Random", "BM25", "Base (zero-shot)", "Hybrid (zero-shot)"] + list(algorithms.row_names().values())
         + ["MTA (trained on MetaTool seen tools)", "LLM Base (SmolLM2-135M, prompt)",
            "LLM LoRA SFT", "LLM MTA-LoRA"])
# (header, dataset, mode) of the main table; "sd/cd" shows both.
COLUMNS = [("MTA-Tools SD", "mta_tools", "sd"), ("MTA-Tools CD", "mta_tools", "cd"),
           ("MTA-Tools hard 5-way", "mta_tools", "hard5"),
           ("API-Bank (5-way CD)", "api_bank", "cd"),
           ("ToolAlpaca (within-API / CD)", "toolalpaca", "sd/cd"),
           ("APIBench (per hub / CD)", "apibench", "sd/cd"),
           ("MetaTool (unseen, 5-way CD)", "metatool", "cd"),
           ("MTA-Tools full-pool top-1", "mta_tools", "full")]
# The paper's external numbers are its CD setting (random distractors from all unseen tools).
PAPER = {"MTA-Tools SD": "94.04", "MTA-Tools CD": "97.33",
         "ToolAlpaca (within-API / CD)": "— / 97.42", "APIBench (per hub / CD)": "— / 96.30²"}
DATASETS = [("mta_tools", "MTA-Tools"), ("api_bank", "API-Bank"), ("toolalpaca", "ToolAlpaca"),
            ("apibench", "APIBench"), ("metatool", "MetaTool")]
HARD = ("hard5", "hard10")
SHOT_LABELS = {"0shot": "0-shot", "k1": "K=1", "k5": "K=5"}
# (label, mode or "full_pool", metric) of the paired comparison, in its order.
COMPARED = ([(m.upper(), m, "acc") for m in ("sd", "cd")]
            + [(f"hard {m[4:]}-way", m, "acc") for m in HARD]
            + [("full-pool top-1", "full_pool", "top1"), ("full-pool MRR", "full_pool", "mrr")])


def _mean_std(xs):
  m = sum(xs) / len(xs)
  return m, (sum((x - m) ** 2 for x in xs) / len(xs)) ** 0.5


def _fmt(values, episode_std=None) -> str:
  """mean ± std in %; one value with no episode std (a single full-pool episode): the mean."""
  if not values:
    return "—"
  m, s = _mean_std(values)
  if len(values) == 1:
    if episode_std is None:
      return f"{100 * m:.2f}"
    s = episode_std
  return f"{100 * m:.2f} ± {100 * s:.2f}"


def _cell(runs, dataset, mode, shot="0shot") -> str:
  res = [r["results"].get(dataset) for r in runs]
  if any(x is None for x in res):
    return "not run⁴"
  if any("skipped" in x for x in res):
    return "not built³"
  if mode == "sd/cd":
    return " / ".join(_cell(runs, dataset, m, shot) for m in ("sd", "cd"))
  if mode.startswith("full"):  # "full" (top-1) or "full:top3", "full:mrr"
    if any("full_pool" not in x for x in res):
      return "n/a⁵"
    return _fmt([x["full_pool"]["0shot"][mode.partition(":")[2] or "top1"] for x in res])
  if mode in HARD and any(mode not in x for x in res):
    return "—"  # evaluated before the hard protocols existed (or not asked for)
  cells = [x.get(mode, {}).get(shot, {}) for x in res]
  if any("skipped" in c for c in cells):
    return "skipped⁶"
  if any("mean" not in c for c in cells):
    return "n/a"
  return _fmt([c["mean"] for c in cells], cells[0]["std"])


def _load(patterns):
  rows = collections.OrderedDict()
  for pat in patterns:
    for wd in sorted(glob.glob(pat)) or [pat]:
      path = pathlib.Path(wd) / "eval.json"
      if path.exists():
        r = json.loads(path.read_text())
        r["_dir"] = wd
        rows.setdefault(r["row"], []).append(r)
  return collections.OrderedDict(sorted(rows.items(), key=lambda kv: _order_key(kv[0])))


def _order_key(name: str) -> tuple:
  """Table order: ``ORDER``; a row with levers ("SFT (hybrid)") sits right after its plain
  row ("SFT"), the plain row first; unknown rows last, by name."""
  if name in ORDER:
    return (ORDER.index(name), 0, name)
  base = name.split(" (")[0]
  return (ORDER.index(base), 1, name) if base in ORDER else (len(ORDER), 0, name)


def _plots(rows, out_dir: pathlib.Path) -> list[str]:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from mta_jax import metrics_log  # pylint: disable=import-outside-toplevel
  out_dir.mkdir(parents=True, exist_ok=True)
  made = []

  fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
  for name, runs in rows.items():
    hist = metrics_log.read_jsonl(runs[0]["_dir"])
    for ax, key in zip(axes, ("outer/loss", "outer/acc", "val/acc")):
      pts = [(h["step"], h[key]) for h in hist if key in h]
      if pts:
        ax.plot(*zip(*pts), label=name, marker="o" if key == "val/acc" else None, ms=3)
        ax.set_title(key)
        ax.set_xlabel("step")
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out_dir / "training_curves.png", dpi=110)
  made.append("training_curves.png")

  fig, ax = plt.subplots(figsize=(5, 3.6))
  for name, runs in rows.items():
    sweep = runs[0]["results"].get("mta_tools", {}).get("inner_steps_sweep")
    if sweep:
      xs = sorted(sweep, key=int)
      ax.plot([int(x) for x in xs], [100 * sweep[x] for x in xs], marker="o", label=name)
  ax.set(xlabel="inner steps at test time", ylabel="MTA-Tools SD accuracy (%)",
         title="accuracy vs inner steps (0-shot)")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out_dir / "inner_steps.png", dpi=110)
  made.append("inner_steps.png")

  fig, ax = plt.subplots(figsize=(5, 3.6))
  for name, runs in rows.items():
    sd = runs[0]["results"].get("mta_tools", {}).get("sd", {})
    pts = [(k, 100 * sd[s]["mean"]) for s, k in (("0shot", 0), ("k1", 1), ("k5", 5))
           if "mean" in sd.get(s, {})]
    if pts:
      ax.plot(*zip(*pts), marker="o", label=name)
  ax.set(xlabel="K labelled queries per candidate", ylabel="MTA-Tools SD accuracy (%)",
         title="accuracy vs K shots")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out_dir / "k_shots.png", dpi=110)
  made.append("k_shots.png")

  fig, ax = plt.subplots(figsize=(9, 3.6))
  names = [n for n, r in rows.items() if "sd" in r[0]["results"].get("mta_tools", {})]
  groups = sorted({g for n in names for g in rows[n][0]["results"]["mta_tools"]["sd"]["0shot"][
      "per_group"]})
  width = 0.8 / max(len(names), 1)
  for i, n in enumerate(names):
    pg = rows[n][0]["results"]["mta_tools"]["sd"]["0shot"]["per_group"]
    ax.bar([j + i * width for j in range(len(groups))], [100 * pg.get(g, 0) for g in groups],
           width, label=n)
  ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))], groups)
  ax.set(ylabel="SD accuracy (%)", title="MTA-Tools per-domain accuracy (SD, 0-shot)")
  ax.set_ylim(0, 100)
  ax.legend(fontsize=7, ncol=4)
  fig.tight_layout()
  fig.savefig(out_dir / "per_domain.png", dpi=110)
  made.append("per_domain.png")
  plt.close("all")
  return made


def _pool_sizes(rows, dataset) -> str:
  for runs in rows.values():
    fp = runs[0]["results"].get(dataset, {}).get("full_pool", {}).get("0shot")
    if fp:
      return f" ({fp['n_tools']} tools)"
  return ""


def _joined(cells: list[str]) -> str:
  """Cells of one dataset joined by " / "; one cell when all say the same note (not run, ...)."""
  same_note = len(set(cells)) == 1 and cells[0][:1].isalpha()
  return cells[0] if same_note else " / ".join(cells)


def _discriminating(rows) -> list[str]:
  """The protocols that separate rows the 5-way random ones do not: hard N-way, full pool."""
  lines = ["## Protocols that discriminate (0-shot)", "",
           "Hard N-way: each unseen tool with its N - 1 nearest tools of the split by the "
           "zero-shot encoder's similarity of their documentation (the same candidate sets for "
           "every row; only the centre tool's queries scored; `mta_jax.hard_tasks`). Full pool: "
           "every unseen query against all the split's tools.", "",
           "| Row | " + " | ".join(f"{n} hard 5 / 10" for _, n in DATASETS) + " |",
           "|" + "---|" * (len(DATASETS) + 1)]
  for name, runs in rows.items():
    cells = [_joined([_cell(runs, d, m) for m in HARD]) for d, _ in DATASETS]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  lines += ["", "| Row | " + " | ".join(f"{n} full pool{_pool_sizes(rows, d)} top-1 / top-3 / "
                                           "MRR" for d, n in DATASETS) + " |",
            "|" + "---|" * (len(DATASETS) + 1)]
  for name, runs in rows.items():
    cells = [_joined([_cell(runs, d, f"full:{k}") for k in ("top1", "top3", "mrr")])
             for d, _ in DATASETS]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  lines += ["", "— : the run's eval.json has no such protocol (written before it existed). "
            "⁶ Skipped: the reason is in the run's eval.json.", "",
            "## Hard 5-way, test-time adaptation (MTA-Tools)", "",
            "| Row | 0-shot | K=1 | K=5 |", "|---|---|---|---|"]
  for name, runs in rows.items():
    lines.append(f"| {name} | " + " | ".join(_cell(runs, "mta_tools", "hard5", s)
                                             for s in ("0shot", "k1", "k5")) + " |")
  return lines + [""]


def _subsets(rows) -> list[str]:
  """MTA-Tools test subsets (1.1.0: tools that are an antonym or variant of a training tool, and
  the rest), 0-shot, for the rows whose eval.json has ``per_subset``; [] when none has."""
  def sub(r, mode, s):
    return r["results"].get("mta_tools", {}).get(mode, {}).get("0shot", {}).get(
        "per_subset", {}).get(s)
  names = sorted({s for runs in rows.values() for r in runs for s in
                  r["results"].get("mta_tools", {}).get("sd", {}).get("0shot", {}).get(
                      "per_subset", {})})
  if not names:
    return []
  modes = ("sd", "cd", "hard5")
  lines = ["## MTA-Tools test subsets (0-shot)", "",
           "Unseen tools that are an antonym or a close variant of a training tool "
           "(`turn_on_lights` next to a trained `turn_off_lights`; MTA-Tools 1.1.0's "
           "`test_subsets`) and the other unseen tools; SD / CD / hard 5-way, mean ± std over "
           "training seeds (each run's per-subset accuracy pools its episode seeds).", "",
           "| Row | " + " | ".join(f"{s.replace('_', ' ')} SD / CD / hard 5" for s in names)
           + " |", "|" + "---|" * (len(names) + 1)]
  for name, runs in rows.items():
    cells = []
    for s in names:
      per = [[sub(r, m, s) for r in runs] for m in modes]
      cells.append(" / ".join(_fmt(v) if all(x is not None for x in v) else "—" for v in per))
    if any(sub(r, m, s) is not None for r in runs for m in modes for s in names):
      lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return lines + [""]


def _values(run, dataset, mode, metric, shot):
  """{query row: value} of one run's protocol, or None without per-query results."""
  res = run["results"].get(dataset, {})
  if mode == "full_pool":
    block = res.get("full_pool", {}).get("0shot", {}).get("per_query")
    return paired.rank_values(block, metric) if block else None
  cell = res.get(mode, {}).get(shot, {})
  if "note" in cell and "per_query" not in cell:  # no adaptation: K-shot repeats 0-shot
    cell = res.get(mode, {}).get("0shot", {})
  return paired.per_query_means(cell["per_query"]) if "per_query" in cell else None


def compare(rows, a: str, b: str, n_boot: int = 10_000) -> list[str]:
  """The paired comparison table of rows ``a`` and ``b`` (markdown lines)."""
  for name in (a, b):
    if name not in rows:
      raise app.UsageError(f"--compare: no row {name!r}{_cli.did_you_mean(name, list(rows))}; "
                           f"rows: {', '.join(rows)}")
  lines = [f"## Paired comparison: {a} vs {b}", "",
           f"Per query: accuracy over the episode seeds (averaged over a row's {len(rows[a])} / "
           f"{len(rows[b])} runs), on the queries both rows scored; difference A - B with its 95% "
           f"paired-bootstrap interval over queries ({n_boot} resamplings, seed 0). Accuracy in "
           "%; MRR × 100. K-shot: a query counts the seeds where it was not drawn as a labelled "
           "example (so the means can differ from the tables' by a few hundredths); a row "
           "without test-time adaptation repeats its 0-shot hits.", "",
           f"| protocol | dataset | {a} | {b} | difference | 95% CI | n queries |",
           "|---|---|---|---|---|---|---|"]
  shots = ("0shot", "k1", "k5")
  n_rows = 0
  for label, mode, metric in COMPARED:
    for shot in (("0shot",) if mode == "full_pool" else shots):
      for ds_name, ds_label in DATASETS:
        va = [_values(r, ds_name, mode, metric, shot) for r in rows[a]]
        vb = [_values(r, ds_name, mode, metric, shot) for r in rows[b]]
        if any(v is None for v in va + vb):
          continue
        shas = {r["results"][ds_name][mode][shot].get("tasks", {}).get("candidate_sets_sha")
                for r in rows[a] + rows[b] if mode in HARD}
        if len(shas) > 1:
          raise app.UsageError(f"{ds_name} {mode}: the rows were scored on different candidate "
                               f"sets ({', '.join(sorted(map(str, shas)))}); re-evaluate them")
        _, xa, xb = paired.pair_values(va, vb)
        if not len(xa):
          continue
        r = paired.paired_bootstrap(xa, xb, n_boot=n_boot)
        proto = label if mode == "full_pool" else f"{label} {SHOT_LABELS[shot]}"
        lines.append(f"| {proto} | {ds_label} | {100 * r['mean_a']:.2f} | "
                     f"{100 * r['mean_b']:.2f} | {100 * r['diff']:+.2f} | "
                     f"[{100 * r['lo']:+.2f}, {100 * r['hi']:+.2f}] | {r['n']} |")
        n_rows += 1
  if not n_rows:
    lines.append("| (no protocol with per-query results in both rows: evaluate them with "
                 "`evaluate.py --per_query_shots=0shot`) | | | | | | |")
  return lines + [""]


def releases(rows) -> str:
  """One line naming the release of every dataset scored, and which rows read which where rows
  differ (a table mixing MTA-Tools 1.0.0 and 1.1.0 says so). Runs whose eval.json predates
  recorded releases read 1.0.0, then the only release; the line marks them."""
  seen = collections.defaultdict(lambda: collections.defaultdict(list))  # dataset -> ver -> rows
  unrecorded = set()
  for name, runs in rows.items():
    for r in runs:
      for d, res in r.get("results", {}).items():
        if not isinstance(res, dict) or "skipped" in res:
          continue
        if not res.get("dataset_version"):
          unrecorded.add(name)
        ver = res.get("dataset_version") or "1.0.0"
        if name not in seen[d][ver]:
          seen[d][ver].append(name)
  if not seen or len(unrecorded) == len(rows):
    return ""  # nothing recorded anywhere: nothing to say
  same = [f"{d} {next(iter(v))}" for d, v in seen.items() if len(v) == 1]
  mixed = [f"{d} " + ", ".join(f"{ver} ({'; '.join(names)})" for ver, names in v.items())
           for d, v in seen.items() if len(v) > 1]
  text = "Data releases: " + "; ".join(mixed + ([f"every row: {', '.join(same)}"] if same else []))
  if unrecorded:
    text += (f". Not recorded by {', '.join(sorted(unrecorded))} (evaluated before releases "
             "were recorded, when 1.0.0 was the only one)")
  return text + "."


def report(rows, title: str, note: str, plots_rel: str, plots: list[str],
           comparisons: list[list[str]] = ()) -> str:
  """The markdown text of RESULTS.md."""
  lines = [f"# {title}", ""]
  if note:
    lines += [note, ""]
  lines += [f"Rendered at commit `{_cli.git_commit()}` (each run's own commit, where recorded, is "
            "in its Commands line). Accuracy in %, top-1 over 5 candidates (gold + 4 distractors)"
            " on tools never trained on; mean ± std over training seeds, or over 5 episode seeds "
            "for a single run. Adaptation at test time from the candidates' documentation only "
            "(0-shot, the paper's setting).", ""]
  if releases_line := releases(rows):
    lines += [releases_line, ""]
  header = ["Row"] + [c[0] for c in COLUMNS] + ["runs"]
  lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines.append("| MTA (paper, reported¹) | " + " | ".join(PAPER.get(c[0], "—") for c in COLUMNS)
               + " | — |")
  for name, runs in rows.items():
    cells = [_cell(runs, d, m) for _, d, m in COLUMNS]
    lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(runs)} |")
  lines += ["", "¹ MetaToolAgent (arXiv:2601.12680), as reported; not reproduced here.",
            "² The paper's \"API-Bench\" column, placed under APIBench.",
            "³ Dataset not built in the data dir: build it with `python -m datasets_tfds.build "
            "--data_dir=tfds_data --datasets=<name>` and rerun the row's evaluate command.",
            "⁴ Not evaluated by this report's commands (no `--datasets=<name>`).",
            "⁵ LLM rows rank 5 candidates per prompt; a full-pool prompt listing every test tool "
            "is not evaluated.", ""]
  lines += ["## Test-time adaptation (MTA-Tools, SD / CD)", "",
            "| Row | SD 0-shot | SD K=1 | SD K=5 | CD 0-shot | CD K=1 | CD K=5 | full-pool top-3 "
            "| full-pool MRR |", "|" + "---|" * 9]
  for name, runs in rows.items():
    cells = [_cell(runs, "mta_tools", m, s) for m in ("sd", "cd") for s in ("0shot", "k1", "k5")]
    fp = [r["results"].get("mta_tools", {}).get("full_pool", {}).get("0shot") for r in runs]
    fp_cells = [_fmt([f[k] for f in fp]) if all(fp) else "—" for k in ("top3", "mrr")]
    lines.append(f"| {name} | " + " | ".join(cells + fp_cells) + " |")
  lines += ["", "Rows without an inner loop (Random, BM25, Base, SFT) do not adapt: their K-shot "
            "cells repeat 0-shot.", ""]
  lines += _discriminating(rows)
  lines += _subsets(rows)
  lines += ["## Commands", ""]
  for name, runs in rows.items():
    for r in runs:
      train_cmd = ""
      cmd = pathlib.Path(r["_dir"]) / "command.txt"
      if cmd.exists():
        last = cmd.read_text().strip().splitlines()[-1].split("\t")
        train_cmd = f"`{last[-1]}` ({last[0]}; checkpoint of step {r['step']}), then "
      at = f", at {r['commit']}" if r.get("commit") else ""
      versions = ", ".join(f"{d} {res['dataset_version']}" for d, res in r.get("results", {}).items()
                           if isinstance(res, dict) and res.get("dataset_version"))
      at += f"; data {versions}" if versions else ""
      lines.append(f"- **{name}**: {train_cmd}`{r['command']}` ({r['date']}{at}, "
                   f"{r['eval_seconds']} s)")
      resumed = set(r.get("resumed", []))
      for ds_name, what in r.get("evaluated_on", {}).items():  # LLM rows may score a subset
        res = r.get("results", {}).get(ds_name, {})
        when = [f"scored {res['scored_at']}"] if "scored_at" in res else []
        when += [f"at {res['commit']}"] if res.get("commit") else []
        if ds_name in resumed:
          when.append("kept from an earlier run of this command")
        lines.append(f"  - {ds_name}: {what}" + (f" ({'; '.join(when)})" if when else ""))
  for c in comparisons:
    lines += [""] + c
  if plots:
    lines += ["", "## Plots", ""] + [f"![{p}]({plots_rel}/{p})" for p in plots]
  return "\n".join(lines) + "\n"


def appended(path: pathlib.Path, out: pathlib.Path) -> str:
  """Another report as a section of this one: headings one level down, its relative links
  (plots) rewritten to resolve from ``out``'s folder."""
  if not path.is_file():
    raise app.UsageError(f"--append: {path} does not exist")
  rel = os.path.relpath(path.parent, out.parent)
  lines = []
  for line in path.read_text("utf-8").splitlines():
    if line.startswith("#"):
      line = "#" + line
    line = re.sub(r"\]\((?!https?:|/)([^)]+)\)", lambda m: f"]({rel}/{m.group(1)})", line)
    lines.append(line)
  return "\n".join(lines) + "\n"


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  rows = _load(_WORKDIRS.value)
  if not rows:
    raise app.UsageError(f"no eval.json under {_WORKDIRS.value}")
  pairs = []
  for c in _COMPARE.value:
    # "A vs B" for row names with commas in them ("MTA (hybrid, hard negatives)"), else "A,B".
    names = [x.strip() for x in (c.split(" vs ") if " vs " in c else c.split(","))]
    if len(names) != 2 or not all(names):
      raise app.UsageError(f"--compare={c}: give two row names, ROW_A,ROW_B (or 'ROW_A vs ROW_B' "
                           "when a name has a comma)")
    pairs.append(names)
  comparisons = [compare(rows, a, b, _N_BOOT.value) for a, b in pairs]
  out = pathlib.Path(_OUT.value)
  plots_dir = out.parent / _PLOTS.value
  plots = _plots(rows, plots_dir)
  text = report(rows, _TITLE.value, _NOTE.value, _PLOTS.value, plots, comparisons)
  for extra in _APPEND.value:
    text += "\n" + appended(pathlib.Path(extra), out)
  out.write_text(text)
  print(text)


if __name__ == "__main__":
  _cli.run(main, "report")
