"""experiments/serve_mcp.py end to end: the official MCP client (``examples/mcp_client.py``, in a
subprocess, bounded in time) starts the server over stdio, lists its tools, ranks, gets bad
arguments back as tool errors with the command line's messages, and the server keeps serving."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOLBOX = ROOT / "examples" / "toolbox"
REQUESTS = [json.loads(l) for l in (ROOT / "examples" / "agent_requests" / "requests.jsonl"
                                    ).read_text().splitlines()]
OWN = REQUESTS[1]["tools"]  # an MCP tools/list result
DUPLICATE = REQUESTS[0]["tools"] + [{"name": "send_email", "description": "other"}]

CALLS = [
    {"tool": "rank_tools", "arguments": {"query": "will I need an umbrella in Lisbon tomorrow?",
                                         "top_k": 3}},
    {"tool": "rank_tools", "arguments": {"messages": REQUESTS[1]["messages"], "tools": OWN}},
    {"tool": "rank_tools", "arguments": {"query": "   "}},
    {"tool": "rank_tools", "arguments": {"query": "x", "tools": DUPLICATE}},
    {"tool": "rank_tools", "arguments": {"query": "x", "candidates": ["set_timer", "set_timr"]}},
    {"tool": "rank_tools", "arguments": {"messages": [{"role": "system", "content": "hi"}]}},
    {"tool": "rank_tools", "arguments": {"query": "x", "top_k": "three"}},
    {"tool": "rank_tools", "arguments": {"query": "how many yen is 250 dollars right now",
                                         "top_k": 2}},
    {"tool": "set_tools", "arguments": {"tools": OWN}},
    {"tool": "rank_tools", "arguments": {"query": "how cold is it at 41.15 N, 8.61 W?"}},
]


def _run(args, timeout):
  env = dict(os.environ)  # the selector's disk cache, where no test names one: git-ignored
  env.setdefault("MTA_JAX_CACHE", str(ROOT / ".jax_cache" / "selector_cache"))
  return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                        timeout=timeout, check=False, cwd=ROOT, env=env)


def test_mcp_round_trip_matches_the_cli_and_survives_bad_arguments(tmp_path):
  calls = tmp_path / "calls.json"
  calls.write_text(json.dumps(CALLS))
  proc = _run([ROOT / "examples" / "mcp_client.py", f"--calls={calls}", "--timeout=60", "--",
               f"--tools={TOOLBOX / 'tools.json'}", f"--cache_dir={tmp_path / 'cache'}"],
              timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
  assert lines[0] == {"tools": ["rank_tools", "set_tools"]}
  res = lines[1:]
  assert len(res) == len(CALLS)
  assert [r["is_error"] for r in res] == [False, False, True, True, True, True, True, False,
                                          False, False]
  errors = [r["error"] for r in res if r["is_error"]]
  assert errors[0].endswith(": empty query")
  assert errors[1].endswith(": tools: duplicate tool name 'send_email' (tools #1 and #4): two "
                            "different specs of one name; names must be unique within one tool "
                            "list")
  assert errors[2].endswith(": unknown tool 'set_timr' in candidates (did you mean 'set_timer'?)")
  assert errors[3].endswith(": 'messages' has no user turn with text (query_from=last_user)")
  assert "top_k" in errors[4]  # the SDK's own argument validation
  assert res[8]["result"]["n_tools"] == 3

  # The same inputs through the command line: the same rankings, the same error lines.
  queries = tmp_path / "queries.jsonl"
  rows = [{"id": 0, "query": CALLS[0]["arguments"]["query"]},
          {"id": 1, "messages": CALLS[1]["arguments"]["messages"], "tools": OWN},
          {"id": 2, "query": CALLS[7]["arguments"]["query"]},
          {"id": 3, "query": CALLS[9]["arguments"]["query"], "tools": OWN}]
  queries.write_text("".join(json.dumps(r) + "\n" for r in rows))
  out = tmp_path / "preds.jsonl"
  cli = _run([ROOT / "experiments" / "select_tools.py", f"--tools={TOOLBOX / 'tools.json'}",
              f"--queries={queries}", f"--output={out}", "--top_k=5",
              f"--cache_dir={tmp_path / 'cache'}"], timeout=300)
  assert cli.returncode == 0, cli.stderr[-3000:]
  want = [json.loads(l)["ranking"] for l in out.read_text().splitlines()]
  got = [res[0], res[1], res[7], res[9]]
  for g, w, k in zip(got, want, [3, 5, 2, 3]):  # one request vs a batch: float noise only
    assert [r["name"] for r in g["result"]["ranking"]] == [r["name"] for r in w[:k]]
    assert [r["score"] for r in g["result"]["ranking"]] == pytest.approx(
        [r["score"] for r in w[:k]], abs=3e-6)
  bad = tmp_path / "bad.jsonl"
  bad.write_text(json.dumps({"query": "x", "tools": DUPLICATE}) + "\n")
  cli = _run([ROOT / "experiments" / "select_tools.py", f"--queries={bad}",
              f"--output={tmp_path / 'x.jsonl'}"], timeout=120)
  assert cli.returncode == 1
  assert cli.stderr.strip().splitlines()[-1] == f"error: {bad}:1: 'tools': " + errors[1].split(
      ": tools: ", 1)[1]


def test_a_bad_tools_file_stops_the_server_before_the_model(tmp_path):
  bad = tmp_path / "tools.json"
  bad.write_text('[{"name": "a"}]')
  proc = _run([ROOT / "experiments" / "serve_mcp.py", f"--tools={bad}"], timeout=120)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == (f"error: {bad}: tool #0 ('a') has no "
                                                  "'description' (a non-empty string is required)")


def test_lexical_with_a_checkpoint_stops_the_server_before_the_model(tmp_path):
  proc = _run([ROOT / "experiments" / "serve_mcp.py", f"--checkpoint={tmp_path / 'run'}",
               "--nolexical"], timeout=120)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: --lexical applies to the pretrained selector only: a checkpoint ranks with the "
      "scorer it was trained with (its scorer.lexical)")


def test_the_scripts_query_from_choices_are_the_librarys():
  """The scripts keep their flag choices import-free (``--help`` without JAX): the same tuple."""
  import ast  # pylint: disable=import-outside-toplevel
  from mta_jax import toolspec  # pylint: disable=import-outside-toplevel
  for script in ("select_tools.py", "serve_mcp.py"):
    tree = ast.parse((ROOT / "experiments" / script).read_text())
    (value,) = [ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                and any(getattr(t, "id", "") == "QUERY_FROM" for t in n.targets)]
    assert value == toolspec.QUERY_FROM, script
