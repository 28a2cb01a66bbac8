r"""Collects ``eval.json`` files into RESULTS.md (the paper's table) and PNG plots.

    python experiments/report.py --workdirs='workdirs/reproduce/*' --out=RESULTS.md

Rows with several runs (training seeds) show mean ± std over the runs' means; a row with one
run shows mean ± std over its episode seeds. Cells of datasets that are not built say so.
"""

import collections
import glob
import json
import pathlib

from absl import app, flags

import _cli  # experiments/_cli.py: git_commit
from mta_jax import algorithms

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Workdirs (globs allowed) holding eval.json.")
_OUT = flags.DEFINE_string("out", "RESULTS.md", "Markdown file to write.")
_PLOTS = flags.DEFINE_string("plots_dir", "results", "Folder for the PNG plots (next to --out).")
_TITLE = flags.DEFINE_string("title", "Results", "Heading of the report.")
_NOTE = flags.DEFINE_string("note", "", "A paragraph under the heading (e.g. which config).")
flags.mark_flag_as_required("workdirs")

# Baselines, then every trained algorithm in the table's order (mta_jax.algorithms), then variants.
ORDER = (["Random", "BM25", "Base (zero-shot)"] + list(algorithms.row_names().values())
         + ["MTA (trained on MetaTool seen tools)", "LLM Base (SmolLM2-135M, prompt)",
            "LLM LoRA SFT", "LLM MTA-LoRA"])
# (header, dataset, mode) of the main table; "sd/cd" shows both.
COLUMNS = [("MTA-Tools SD", "mta_tools", "sd"), ("MTA-Tools CD", "mta_tools", "cd"),
           ("API-Bank (5-way CD)", "api_bank", "cd"),
           ("ToolAlpaca (within-API / CD)", "toolalpaca", "sd/cd"),
           ("APIBench (per hub)", "apibench", "sd"),
           ("MetaTool (unseen, 5-way CD)", "metatool", "cd"),
           ("MTA-Tools full-pool top-1", "mta_tools", "full")]
PAPER = {"MTA-Tools SD": "94.04", "MTA-Tools CD": "97.33", "ToolAlpaca (within-API / CD)": "97.42",
         "APIBench (per hub)": "96.30²"}


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
  if mode == "full":
    if any("full_pool" not in x for x in res):
      return "n/a⁵"
    return _fmt([x["full_pool"]["0shot"]["top1"] for x in res])
  cells = [x.get(mode, {}).get(shot, {}) for x in res]
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
  return collections.OrderedDict(sorted(rows.items(), key=lambda kv: (
      ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER), kv[0])))


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


def report(rows, title: str, note: str, plots_rel: str, plots: list[str]) -> str:
  """The markdown text of RESULTS.md."""
  lines = [f"# {title}", ""]
  if note:
    lines += [note, ""]
  lines += [f"Rendered at commit `{_cli.git_commit()}` (each run's own commit, where recorded, is "
            "in its Commands line). Accuracy in %, top-1 over 5 candidates (gold + 4 distractors)"
            " on tools never trained on; mean ± std over training seeds, or over 5 episode seeds "
            "for a single run. Adaptation at test time from the candidates' documentation only "
            "(0-shot, the paper's setting).", ""]
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
            "cells repeat 0-shot.", "", "## Commands", ""]
  for name, runs in rows.items():
    for r in runs:
      train_cmd = ""
      cmd = pathlib.Path(r["_dir"]) / "command.txt"
      if cmd.exists():
        last = cmd.read_text().strip().splitlines()[-1].split("\t")
        train_cmd = f"`{last[-1]}` ({last[0]}; checkpoint of step {r['step']}), then "
      at = f", at {r['commit']}" if r.get("commit") else ""
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
  if plots:
    lines += ["", "## Plots", ""] + [f"![{p}]({plots_rel}/{p})" for p in plots]
  return "\n".join(lines) + "\n"


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  rows = _load(_WORKDIRS.value)
  if not rows:
    raise app.UsageError(f"no eval.json under {_WORKDIRS.value}")
  out = pathlib.Path(_OUT.value)
  plots_dir = out.parent / _PLOTS.value
  plots = _plots(rows, plots_dir)
  text = report(rows, _TITLE.value, _NOTE.value, _PLOTS.value, plots)
  out.write_text(text)
  print(text)


if __name__ == "__main__":
  app.run(main)
