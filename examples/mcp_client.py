"""Ask the tool-selector MCP server which tools fit a request, with the official MCP client.

    .venv/bin/python examples/mcp_client.py                       # the example toolbox
    .venv/bin/python examples/mcp_client.py --calls=CALLS.json    # your own calls

Starts ``experiments/serve_mcp.py`` over stdio (arguments after ``--`` go to it; default
``--tools=examples/toolbox/tools.json``), lists its tools, then makes each call of ``--calls``
(a JSON list of ``{"tool": "rank_tools" | "set_tools", "arguments": {...}}``) and prints one JSON
line per call: ``{"is_error", "result" or "error", "ms"}``. Every call is bounded by
``--timeout`` seconds.
"""

import argparse
import json
import os
import pathlib
import sys
import time

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE_CALLS = [
    {"tool": "rank_tools", "arguments": {"query": "will I need an umbrella in Lisbon tomorrow?",
                                         "top_k": 3}},
    {"tool": "rank_tools", "arguments": {"messages": [
        {"role": "system", "content": "You are a travel assistant."},
        {"role": "user", "content": "Find me a flight from Lisbon to Porto on Friday"}]}},
    {"tool": "rank_tools", "arguments": {"query": "   "}},  # an error; the server goes on
]


# The SDK starts the server with a minimal environment (HOME, PATH, ...): pass on what the
# selector reads.
SERVER_ENV = {"PYTHONUNBUFFERED": "1", **{
    k: os.environ[k] for k in ("PYTHONPATH", "MTA_JAX_CACHE", "XDG_CACHE_HOME",
                               "JAX_COMPILATION_CACHE_DIR", "JAX_PLATFORMS") if k in os.environ}}


async def run(server_args: list[str], calls: list[dict], timeout: float) -> list[dict]:
  params = StdioServerParameters(command=sys.executable,
                                 args=[str(ROOT / "experiments" / "serve_mcp.py"), *server_args],
                                 cwd=str(ROOT), env=SERVER_ENV)
  out = []
  with anyio.fail_after(timeout * (len(calls) + 2)):
    async with Client(params, read_timeout_seconds=timeout) as client:
      listed = await client.list_tools()
      print(json.dumps({"tools": sorted(t.name for t in listed.tools)}), flush=True)
      for call in calls:
        t0 = time.perf_counter()
        res = await client.call_tool(call["tool"], call.get("arguments", {}))
        ms = 1e3 * (time.perf_counter() - t0)
        text = " ".join(c.text for c in res.content if getattr(c, "text", None))
        row = ({"is_error": True, "error": text} if res.is_error else
               {"is_error": False, "result": res.structured_content or json.loads(text)})
        row["ms"] = round(ms, 2)
        out.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
  return out


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--calls", default="", help="JSON list of calls (default: a short demo)")
  ap.add_argument("--timeout", type=float, default=120.0, help="seconds per call")
  ap.add_argument("server_args", nargs="*", help="after --: arguments of serve_mcp.py")
  a = ap.parse_args()
  calls = json.loads(pathlib.Path(a.calls).read_text()) if a.calls else EXAMPLE_CALLS
  server_args = a.server_args or [f"--tools={ROOT / 'examples' / 'toolbox' / 'tools.json'}"]
  anyio.run(run, server_args, calls, a.timeout)


if __name__ == "__main__":
  main()
