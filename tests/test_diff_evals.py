"""experiments/diff_evals.py: the exact comparison of two eval.json files behind issue 17's
"same numbers before and after" check."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import diff_evals  # pylint: disable=wrong-import-position


def test_identical_results_differ_nowhere_and_a_changed_digit_is_found(tmp_path):
  res = {"mta_tools": {"sd": {"0shot": {"mean": 0.93, "per_seed": [0.9, 0.96], "seconds": 3.0}}}}
  changed = json.loads(json.dumps(res))
  changed["mta_tools"]["sd"]["0shot"]["per_seed"][1] = 0.9600000001
  changed["mta_tools"]["sd"]["0shot"]["seconds"] = 9.0  # timings are not results
  assert diff_evals.diff(res, json.loads(json.dumps(res))) == (3, [])
  n, diffs = diff_evals.diff(res, changed)
  assert n == 3 and diffs == ["mta_tools/sd/0shot/per_seed[1]: 0.96 != 0.9600000001"]
  for name, results in (("a", res), ("b", changed)):
    (tmp_path / f"{name}.json").write_text(json.dumps({"results": results}))
  out = subprocess.run([sys.executable, "experiments/diff_evals.py", f"--a={tmp_path / 'a.json'}",
                        f"--b={tmp_path / 'b.json'}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, check=False)
  assert out.returncode == 1 and "3 numbers compared, 1 differ" in out.stdout, out.stderr
