"""experiments/select_tools.py: the file contract, bad input (one line, file and line named,
non-zero exit, --output untouched), and agreement with the library on the example toolbox.

The CLI runs as a real subprocess; bad input is rejected before the model loads, so those runs
take about as long as importing JAX."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mta_jax import toolspec
from mta_jax.selector import ToolSelector

from test_selector import write_checkpoint  # pylint: disable=wrong-import-order

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "select_tools.py"
TOOLBOX = ROOT / "examples" / "toolbox"
PREVIOUS = '{"id": "old", "ranking": []}\n'


def _cli(*args, timeout=300):
  env = dict(os.environ)  # conftest has set the compilation cache folder
  return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                        timeout=timeout, env=env, check=False)


def _toolbox(tmp_path, tools=None, queries=None, support=None) -> dict:
  """The example toolbox copied to ``tmp_path``, with any file's text replaced."""
  paths = {}
  for name, text in (("tools.json", tools), ("queries.jsonl", queries),
                     ("support.jsonl", support)):
    p = tmp_path / name
    if text is None:
      shutil.copy(TOOLBOX / name, p)
    else:
      p.write_text(text)
    paths[name] = p
  return paths


def _tools_with(mutate) -> str:
  tools = json.loads((TOOLBOX / "tools.json").read_text())
  mutate(tools)
  return json.dumps(tools, indent=2)


GOOD_Q = '{"id": 1, "query": "wake me in ten minutes"}\n'
# (name, which file is bad and its text, the expected message after "error: FILE")
BAD = {
    "tools_invalid_json": ({"tools": '[\n  {"type": "function",\n   "function": {"name": }}\n]'},
                           "tools.json:3: invalid JSON"),
    "queries_invalid_json": ({"queries": GOOD_Q + '{"id": 2, "query": "x",}\n'},
                             "queries.jsonl:2: invalid JSON"),
    "tool_without_name": ({"tools": _tools_with(lambda t: t[1]["function"].pop("name"))},
                          "tools.json: tool #1 has no 'name'"),
    "tool_without_description": (
        {"tools": _tools_with(lambda t: t[6]["function"].pop("description"))},
        "tools.json: tool #6 ('set_timer') has no 'description'"),
    "duplicate_names": ({"tools": _tools_with(lambda t: t[7]["function"].update(
        name="set_timer"))}, "tools.json: duplicate tool name 'set_timer' (tools #6 and #7)"),
    "unknown_candidate": (
        {"queries": GOOD_Q + '{"id": 2, "query": "x", "candidates": ["set_timer", "set_timr"]}'},
        "queries.jsonl:2: unknown tool 'set_timr' in candidates (did you mean 'set_timer'?)"),
    "one_candidate": ({"queries": '{"id": 1, "query": "x", "candidates": ["set_timer"]}\n'},
                      "queries.jsonl:1: 1 candidate(s); at least 2"),
    "empty_query": ({"queries": GOOD_Q + "\n" + '{"id": 3, "query": " "}\n'},
                    "queries.jsonl:3: empty query"),
    "support_unknown_tool": (
        {"support": '{"query": "a", "tool": "set_timer"}\n{"query": "b", "tool": "timer"}\n'},
        "support.jsonl:2: unknown tool 'timer' in 'tool'"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_readers_name_the_file_and_line(tmp_path, name):
  files, message = BAD[name]
  p = _toolbox(tmp_path, **files)
  with pytest.raises(toolspec.InputError) as e:
    tools = toolspec.read_tools(p["tools.json"])
    names = [t.name for t in tools]
    toolspec.read_queries(p["queries.jsonl"], names)
    toolspec.read_support(p["support.jsonl"], names)
  assert str(e.value).startswith(f"{tmp_path}/{message}")


def _assert_failed_cleanly(proc, out: pathlib.Path, message: str):
  assert proc.returncode != 0
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert "Traceback" not in proc.stderr, proc.stderr
  assert len([l for l in lines if l.startswith("error:")]) == 1, proc.stderr
  assert message in lines[-1], proc.stderr
  # The previous output is intact and no temporary file is left next to it.
  assert out.read_text() == PREVIOUS
  assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_exits_with_one_line_and_keeps_output(tmp_path, name):
  files, message = BAD[name]
  p = _toolbox(tmp_path, **files)
  out = tmp_path / "preds.jsonl"
  out.write_text(PREVIOUS)
  proc = _cli(f"--tools={p['tools.json']}", f"--queries={p['queries.jsonl']}",
              f"--support={p['support.jsonl']}", f"--output={out}")
  _assert_failed_cleanly(proc, out, message)


def test_missing_and_corrupt_checkpoints_exit_cleanly(tmp_path, text_encoder):
  p = _toolbox(tmp_path)
  out = tmp_path / "preds.jsonl"
  out.write_text(PREVIOUS)
  args = [f"--tools={p['tools.json']}", f"--queries={p['queries.jsonl']}", f"--output={out}"]
  proc = _cli(*args, f"--checkpoint={tmp_path / 'no_such_run'}")
  _assert_failed_cleanly(proc, out, "checkpoint folder does not exist")
  run = tmp_path / "run"
  write_checkpoint(run, text_encoder)
  state_files = sorted((f for f in (run / "best").rglob("*") if f.is_file()),
                       key=lambda f: f.stat().st_size)
  state_files[-1].write_bytes(b"\0" * 64)
  proc = _cli(*args, f"--checkpoint={run}")
  _assert_failed_cleanly(proc, out, f"{run}/best")


def test_interrupted_write_keeps_the_previous_file(tmp_path):
  out = tmp_path / "preds.jsonl"
  out.write_text(PREVIOUS)

  def rows():
    yield {"id": 1, "ranking": []}
    raise KeyboardInterrupt  # e.g. Ctrl-C halfway through

  with pytest.raises(KeyboardInterrupt):
    toolspec.write_jsonl_atomic(out, rows())
  assert out.read_text() == PREVIOUS and [p.name for p in tmp_path.iterdir()] == [out.name]
  assert toolspec.write_jsonl_atomic(out, [{"id": 2}]) == 1
  assert out.read_text() == '{"id": 2}\n'


@pytest.mark.parametrize("use_checkpoint", [False, True], ids=["zero_shot", "checkpoint"])
def test_cli_matches_the_library_on_the_example_toolbox(tmp_path, text_encoder, use_checkpoint):
  out = tmp_path / "preds.jsonl"
  out.write_text(PREVIOUS)  # replaced by a complete new file
  args = [f"--tools={TOOLBOX / 'tools.json'}", f"--queries={TOOLBOX / 'queries.jsonl'}",
          f"--support={TOOLBOX / 'support.jsonl'}", f"--output={out}", "--top_k=3",
          "--progress_from=1"]
  if use_checkpoint:
    write_checkpoint(tmp_path / "run", text_encoder)
    args.append(f"--checkpoint={tmp_path / 'run'}")
    selector = ToolSelector.load(str(tmp_path / "run"), encoder=text_encoder)
  else:
    selector = ToolSelector.pretrained(encoder=text_encoder)
  proc = _cli(*args)
  assert proc.returncode == 0, proc.stderr
  summary = proc.stdout.strip().splitlines()[-1]
  assert summary.startswith("ranked 10 queries over 8 tools (8 support examples")
  assert summary.endswith(f" s -> {out}")
  assert "rank" in proc.stderr  # the progress bar

  queries = [json.loads(l) for l in (TOOLBOX / "queries.jsonl").read_text().splitlines()]
  support = [json.loads(l) for l in (TOOLBOX / "support.jsonl").read_text().splitlines()]
  selector.set_tools(json.loads((TOOLBOX / "tools.json").read_text()), warmup=False)
  selector.adapt(support)
  want = selector.rank([q["query"] for q in queries], [q.get("candidates") for q in queries],
                       top_k=3)
  got = [json.loads(l) for l in out.read_text().splitlines()]
  assert [g["id"] for g in got] == [q["id"] for q in queries]  # input order
  for g, w in zip(got, want):
    assert [r["name"] for r in g["ranking"]] == [c.name for c in w]
    np.testing.assert_allclose([r["score"] for r in g["ranking"]], [c.score for c in w],
                               atol=1e-5)
  assert [len(g["ranking"]) for g in got] == [3] * 8 + [3, 2]  # q10 has 2 candidates
