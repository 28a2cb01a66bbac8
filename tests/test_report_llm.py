"""report.py on an LLM row: each dataset's line says which queries were scored, when, and whether
a resumed run kept it from an earlier process (the committed results/runs/llm_base/eval.json)."""

import copy
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import report  # pylint: disable=wrong-import-position


def test_llm_commands_lines_say_when_each_dataset_was_scored_and_what_was_kept(tmp_path):
  run = json.loads((ROOT / "results/runs/llm_base/eval.json").read_text())
  run["_dir"] = str(tmp_path)  # no command.txt: the LLM row trains nothing
  fresh = copy.deepcopy(run)
  fresh["resumed"] = []
  fresh["results"]["apibench"]["scored_at"] = "2026-11-29T09:33:00"
  for r, kept_note in ((run, True), (fresh, False)):
    text = report.report({run["row"]: [r]}, "t", "", "results", [])
    lines = {l.split(":")[0].strip(" -"): l for l in text.splitlines() if l.startswith("  - ")}
    assert set(lines) == set(run["evaluated_on"])
    assert ("kept from an earlier run of this command" in lines["mta_tools"]) == kept_note
    assert ("kept from" in lines["apibench"]) == ("apibench" in r["resumed"])
  assert "(scored 2026-11-29T09:33:00)" in text
