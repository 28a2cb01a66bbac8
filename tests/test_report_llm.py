"""report.py on an LLM row: each dataset's line says which queries were scored, when, and whether
a resumed run kept it from an earlier process (the committed results/runs/llm_base/eval.json)."""

import copy
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import _cli  # pylint: disable=wrong-import-position
import report  # pylint: disable=wrong-import-position


def test_llm_commands_lines_say_when_each_dataset_was_scored_and_what_was_kept(tmp_path):
  run = json.loads((ROOT / "results/runs/llm_base/eval.json").read_text())
  run["_dir"] = str(tmp_path)  # no command.txt: the LLM row trains nothing
  fresh = copy.deepcopy(run)
  fresh["resumed"] = []
  fresh["results"]["apibench"].update(scored_at="2026-11-29T09:33:00", commit="abc1234")
  fresh["commit"] = "abc1234+dirty"
  for r, kept_note in ((run, True), (fresh, False)):
    text = report.report({run["row"]: [r]}, "t", "", "results", [])
    lines = {l.split(":")[0].strip(" -"): l for l in text.splitlines() if l.startswith("  - ")}
    assert set(lines) == set(run["evaluated_on"])
    assert ("kept from an earlier run of this command" in lines["mta_tools"]) == kept_note
    assert ("kept from" in lines["apibench"]) == ("apibench" in r["resumed"])
  assert "(scored 2026-11-29T09:33:00; at abc1234)" in text
  assert f"({run['date']}, at abc1234+dirty, {run['eval_seconds']} s)" in text


def test_git_commit_names_this_checkout():
  import re  # pylint: disable=import-outside-toplevel
  want = r"[0-9a-f]{7,40}(\+dirty)?" if (ROOT / ".git").exists() else "unknown"
  assert re.fullmatch(want, _cli.git_commit())


def test_releases_line_names_which_rows_read_which_release():
  def run(ver_mta, recorded=True):
    res = {"mta_tools": {"sd": {}}, "toolalpaca": {"sd": {}}, "apibench": {"skipped": "not built"}}
    if recorded:
      res["mta_tools"]["dataset_version"] = ver_mta
      res["toolalpaca"]["dataset_version"] = "1.0.0"
    return {"results": res}
  rows = {"SFT": [run("1.1.0"), run("1.1.0")], "MTA": [run("1.1.0")], "LLM": [run("", False)]}
  line = report.releases(rows)
  assert line.startswith("Data releases: mta_tools 1.1.0 (SFT; MTA), 1.0.0 (LLM); every row: "
                         "toolalpaca 1.0.0.")
  assert "Not recorded by LLM" in line and "apibench" not in line  # skipped: not scored
  assert report.releases({"LLM": [run("", False)]}) == ""  # nothing recorded: no line
  assert report.releases({"SFT": [run("1.1.0")]}) == (
      "Data releases: every row: mta_tools 1.1.0, toolalpaca 1.0.0.")


def test_subsets_table_has_each_rows_subset_accuracy_and_skips_rows_without():
  def run(a, o):
    cell = lambda: {"0shot": {"mean": 0.5, "per_subset": {"antonym_or_variant": a, "other": o}}}
    return {"results": {"mta_tools": {"sd": cell(), "cd": cell(), "hard5": cell()}}}
  old = {"results": {"mta_tools": {"sd": {"0shot": {"mean": 0.5}}}}}
  lines = report._subsets({"MTA": [run(0.8, 0.9), run(0.6, 0.9)], "Old": [old]})
  row = next(l for l in lines if l.startswith("| MTA |"))
  assert row == ("| MTA | 70.00 ± 10.00 / 70.00 ± 10.00 / 70.00 ± 10.00 | "
                 "90.00 ± 0.00 / 90.00 ± 0.00 / 90.00 ± 0.00 |")
  assert not any(l.startswith("| Old |") for l in lines)
  assert report._subsets({"Old": [old]}) == []


def test_rows_with_levers_sit_after_their_algorithms_plain_row():
  names = ["MTA (hybrid, hard negatives)", "LLM Base (SmolLM2-135M, prompt)", "SFT (hybrid)",
           "Zzz", "BM25", "MTA (trained on MetaTool seen tools)", "MTA", "ProtoNet (hybrid)"]
  got = sorted(names, key=report._order_key)
  assert got == ["BM25", "SFT (hybrid)", "ProtoNet (hybrid)", "MTA", "MTA (hybrid, hard negatives)",
                 "MTA (trained on MetaTool seen tools)", "LLM Base (SmolLM2-135M, prompt)", "Zzz"]
