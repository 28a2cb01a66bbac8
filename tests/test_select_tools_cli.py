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
  # The selector's disk cache, where no test names one: git-ignored, not the user's home.
  env.setdefault("MTA_JAX_CACHE", str(ROOT / ".jax_cache" / "selector_cache"))
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


def test_lexical_with_a_checkpoint_is_an_error_before_the_model(tmp_path):
  p = _toolbox(tmp_path)
  out = tmp_path / "preds.jsonl"
  out.write_text(PREVIOUS)
  proc = _cli(f"--tools={p['tools.json']}", f"--queries={p['queries.jsonl']}", f"--output={out}",
              f"--checkpoint={tmp_path / 'run'}", "--lexical=false")
  _assert_failed_cleanly(proc, out, "--lexical applies to the pretrained selector only: a "
                         "checkpoint ranks with the scorer it was trained with")


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


@pytest.mark.parametrize("use_checkpoint,lexical", [(False, None), (False, False), (True, None)],
                         ids=["zero_shot_hybrid", "zero_shot_dense", "checkpoint"])
def test_cli_matches_the_library_on_the_example_toolbox(tmp_path, text_encoder, use_checkpoint,
                                                        lexical):
  out = tmp_path / "preds.jsonl"
  out.write_text(PREVIOUS)  # replaced by a complete new file
  args = [f"--tools={TOOLBOX / 'tools.json'}", f"--queries={TOOLBOX / 'queries.jsonl'}",
          f"--support={TOOLBOX / 'support.jsonl'}", f"--output={out}", "--top_k=3",
          "--progress_from=1"]
  if use_checkpoint:
    write_checkpoint(tmp_path / "run", text_encoder)
    args.append(f"--checkpoint={tmp_path / 'run'}")
    selector = ToolSelector.load(str(tmp_path / "run"), encoder=text_encoder)
  else:  # the default is the hybrid; --lexical=false the dense encoder alone
    if lexical is not None:
      args.append(f"--lexical={str(lexical).lower()}")
    selector = ToolSelector.pretrained(encoder=text_encoder, lexical=lexical is not False)
  proc = _cli(*args)
  assert proc.returncode == 0, proc.stderr
  summary = proc.stdout.strip().splitlines()[-1]
  assert summary.startswith("ranked 10 queries over 8 tools (8 support examples")
  assert summary.endswith(f" s -> {out}")
  if not use_checkpoint:
    assert ("zero-shot encoder + BM25)" in summary) == (lexical is not False), summary
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


# ---------------------------------------------------------------------------- per-query tools

REQUESTS = ROOT / "examples" / "agent_requests" / "requests.jsonl"
LONG_Q = ("Some background first: our team plans the quarter, the budget, hiring and travel. "
          * 25 + "Now, what is Apple trading at?")
ZH_Q = "苹果公司的股票现在多少钱？"


def _requests_with_extras(tmp_path) -> pathlib.Path:
  lines = REQUESTS.read_text().splitlines()
  tools = json.loads(lines[0])["tools"]
  extra = [{"id": "long", "query": LONG_Q, "tools": tools},
           {"id": "zh", "query": ZH_Q, "tools": tools}]
  p = tmp_path / "requests.jsonl"
  p.write_text("\n".join(lines + [json.dumps(e) for e in extra]) + "\n")
  return p


def test_cli_ranks_each_line_against_its_own_tools(tmp_path, text_encoder):
  queries = _requests_with_extras(tmp_path)
  out = tmp_path / "preds.jsonl"
  proc = _cli(f"--queries={queries}", f"--output={out}", "--top_k=2",
              f"--cache_dir={tmp_path / 'cache'}")
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip().splitlines()[-1].startswith(
      "ranked 7 queries over 7 distinct tool specs in 2 tool lists (0 support examples")
  warn = [l for l in proc.stderr.splitlines() if l.startswith("warning: ")]
  assert len(warn) == 2, proc.stderr
  assert warn[0].startswith("warning: 1 of 14 texts are longer than the encoder's 256-token "
                            f"window and were embedded as overlapping windows, mean-pooled")
  assert f"first {queries}:6 (" in warn[0]
  assert warn[1].startswith(f"warning: 1 of 14 texts are over 20% [UNK] or single-character "
                            f"word pieces, first {queries}:7 (")
  rows = toolspec.read_queries(queries, None)
  want = ToolSelector.pretrained(encoder=text_encoder).rank(
      [r.query for r in rows], [r.candidates for r in rows], top_k=2, tools=[r.tools for r in rows])
  got = [json.loads(l) for l in out.read_text().splitlines()]
  assert [g["id"] for g in got] == ["r1", "r2", "r3", "r4", "r5", "long", "zh"]
  for g, w in zip(got, want):
    assert [r["name"] for r in g["ranking"]] == [c.name for c in w]
    np.testing.assert_allclose([r["score"] for r in g["ranking"]], [c.score for c in w],
                               atol=1e-5)
  assert [g["ranking"][0]["name"] for g in got[:5]] == [
      "get_current_weather", "book_table", "get_current_weather", "send_email", "get_stock_price"]


def _line(obj) -> str:
  return json.dumps(obj) + "\n"


TOOLS_A = json.loads(REQUESTS.read_text().splitlines()[0])["tools"]
BAD_OWN = {
    "two_specs_in_one_list": (
        [], _line({"query": "x", "tools": TOOLS_A}) + _line(
            {"query": "y", "tools": TOOLS_A + [{"name": "send_email", "description": "other"}]}),
        "requests.jsonl:2: 'tools': duplicate tool name 'send_email' (tools #1 and #4): two "
        "different specs of one name"),
    "line_without_tools_and_no_tools_flag": (
        [], _line({"query": "x", "tools": TOOLS_A}) + _line({"query": "y"}),
        "requests.jsonl:2: no 'tools' in this line and no global tool list (--tools) given"),
    "candidate_not_in_the_lines_list": (
        [], _line({"query": "x", "tools": TOOLS_A, "candidates": ["send_email", "book_table"]}),
        "requests.jsonl:1: unknown tool 'book_table' in candidates"),
    "messages_without_user_turn": (
        [], _line({"messages": [{"role": "system", "content": "hi"}], "tools": TOOLS_A}),
        "requests.jsonl:1: 'messages' has no user turn with text (query_from=last_user)"),
    "support_with_own_tools": (
        ["--tools", "--support"], _line({"query": "x", "tools": TOOLS_A}),
        "requests.jsonl:1: this line brings its own 'tools', but --support examples adapt the "
        "--tools toolbox only"),
    "strict_foreign_text": (
        ["--strict"], _line({"query": ZH_Q, "tools": TOOLS_A}),
        "1 of 5 texts are over 20% [UNK] or single-character word pieces, first "),
}


@pytest.mark.parametrize("name", list(BAD_OWN))
def test_bad_per_query_input_exits_with_one_line_before_the_model(tmp_path, name):
  extra, text, message = BAD_OWN[name]
  queries = tmp_path / "requests.jsonl"
  queries.write_text(text)
  out = tmp_path / "preds.jsonl"
  out.write_text(PREVIOUS)
  args = [f"--queries={queries}", f"--output={out}"]
  if "--tools" in extra:
    args.append(f"--tools={TOOLBOX / 'tools.json'}")
  if "--support" in extra:
    args.append(f"--support={TOOLBOX / 'support.jsonl'}")
  args += [a for a in extra if a not in ("--tools", "--support")]
  proc = _cli(*args)
  _assert_failed_cleanly(proc, out, message)
