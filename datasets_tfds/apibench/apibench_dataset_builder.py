"""Gorilla APIBench (Patil et al. 2023): which model-hub API serves an instruction, in our schema.

Raw files (ShishirPatil/gorilla at commit 6ea5797), JSON Lines despite ``.json``: the API pools
``{huggingface,tensorflowhub,torchhub}_api.jsonl`` and the evaluation instructions
``{huggingface,tensorflow,torchhub}_eval.json``.

A tool is one pool entry, named by its ``api_call`` string; entries that share an ``api_call``
are merged into one tool, keeping the first (TF Hub lists the same ``hub.KerasLayer(url)`` under
many names). Its description joins the ``api_data`` fields ``description``, ``domain`` and
``functionality``; ``api_arguments`` become the JSON schema's properties. The group is the hub.
A query is the text between "###Instruction:" and "###Output" of ``code``; its gold is
``api_data.api_call``. A gold call missing from the pool (77 HF instructions that add arguments
such as ``torch_dtype=torch.float16`` to a pool call) is matched to the pool entry of the same
``api_name`` (see :func:`match_by_name`) and tagged "gold_matched_by_api_name".
"""

from __future__ import annotations

import collections
import json
import pathlib
import re

import tensorflow_datasets as tfds

from datasets_tfds import external_common as ec
from datasets_tfds import schema

COMMIT = "6ea57973c7a6097fd7c5915698c54c17c5b1b6c8"
_RAW = f"https://raw.githubusercontent.com/ShishirPatil/gorilla/{COMMIT}/data"
# hub (the group) -> (pool file, eval file)
HUBS = {
    "huggingface": ("huggingface_api.jsonl", "huggingface_eval.json"),
    "tensorflowhub": ("tensorflowhub_api.jsonl", "tensorflow_eval.json"),
    "torchhub": ("torchhub_api.jsonl", "torchhub_eval.json"),
}
URLS = {**{pool: f"{_RAW}/api/{pool}" for pool, _ in HUBS.values()},
        **{ev: f"{_RAW}/apibench/{ev}" for _, ev in HUBS.values()}}
_INSTRUCTION = re.compile(r"#{3}\s*Instruction:\s*(.*?)\s*(?:#{3}\s*Output|$)", re.S)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def read_jsonl(path: pathlib.Path, what: str, report: ec.ConversionReport) -> list:
  """(line number, record) of every JSON line; an unparseable line is counted and skipped."""
  out = []
  with open(path, encoding="utf-8") as f:
    for line_no, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
        if not isinstance(rec, dict):
          raise ValueError("not an object")
      except ValueError:
        report.drop(f"{what} line is not a JSON object", f"{path.name}:{line_no}")
        continue
      out.append((line_no, rec))
  return out


def describe(api: dict) -> str:
  """A tool description from the api_data fields."""
  text = (api.get("description") or "").strip()
  if text and text[-1] not in ".!?":
    text += "."
  extra = [f"{k.capitalize()}: {str(api[k]).strip()}." for k in ("domain", "functionality")
           if api.get(k) and str(api[k]).strip() not in ("", "N/A")]
  return " ".join([text] + extra).strip()


def parameters(api_arguments) -> dict:
  """APIBench's free-form ``api_arguments`` (dict, list of names, text) -> a JSON schema."""
  props = {}
  if isinstance(api_arguments, dict):
    props = {str(k): {"description": v if isinstance(v, str) else json.dumps(v)}
             for k, v in api_arguments.items()}
  elif isinstance(api_arguments, list):
    props = {a.strip(): {} for a in api_arguments if isinstance(a, str) and _IDENT.match(a.strip())}
  return {"type": "object", "properties": props} if props else {}


def instruction(code: str) -> str:
  m = _INSTRUCTION.search(code or "")
  return m.group(1).strip() if m else ""


def match_by_name(gold: str, same_name: set, index: dict) -> str | None:
  """The pool call of a gold call that is not in the pool, among the calls of the same api_name.

  One call: that one. Several: the longest whose text, without its closing parentheses, begins
  the gold call (the gold adds arguments), if it is the only one of that length.
  """
  same = sorted(c for c in same_name if c in index)
  if len(same) > 1:
    same = [c for c in same if gold.startswith(c.rstrip(")"))]
    longest = max((len(c) for c in same), default=0)
    same = [c for c in same if len(c) == longest]
  return same[0] if len(same) == 1 else None


def convert(paths: dict[str, pathlib.Path]) -> ec.Conversion:
  report = ec.ConversionReport()
  tools, qa = [], []
  index: dict[str, int] = {}
  pool_stats = {}
  for hub, (pool_file, eval_file) in HUBS.items():
    pool = read_jsonl(paths[pool_file], "pool", report)
    hub_names = collections.defaultdict(set)  # api_name -> the calls of its entries
    first: dict[str, dict] = {}
    variants = collections.defaultdict(set)
    for line_no, api in pool:
      call = str(api.get("api_call") or "").strip()
      if not call:
        report.drop("pool entry without api_call", f"{pool_file}:{line_no}")
        continue
      variants[call].add(json.dumps(api, sort_keys=True))
      first.setdefault(call, api)
      hub_names[str(api.get("api_name") or "")].add(call)
    for call, api in first.items():
      if call in index:
        raise ValueError(f"api_call {call!r} is in two hubs")
      description = describe(api)
      if not description:
        report.drop("pool entry without description", f"{pool_file}:{call}")
        continue
      index[call] = len(tools)
      tools.append(schema.tool_example(len(tools), call, description,
                                       parameters(api.get("api_arguments")), hub, "test"))
    pool_stats[hub] = {"pool_lines": len(pool), "tools": len(first),
                       "merged_duplicates": len(pool) - len(first),
                       "merged_calls_with_differing_entries":
                           sum(len(v) > 1 for v in variants.values())}

    n_by_name = 0
    for line_no, rec in read_jsonl(paths[eval_file], "eval", report):
      rid = f"apibench-{hub}-{line_no:04d}"
      query = instruction(rec.get("code", ""))
      api = rec.get("api_data") or {}
      gold = str(api.get("api_call") or rec.get("api_call") or "").strip()
      if not query:
        report.drop("no instruction text in code", rid)
        continue
      tags = []
      if gold not in index or tools[index[gold]]["group"] != hub:
        gold = match_by_name(gold, hub_names.get(str(api.get("api_name") or ""), set()), index)
        if gold is None:
          report.drop("gold api_call not in the hub's pool (and no unique same-name entry)", rid)
          continue
        tags.append("gold_matched_by_api_name")
        n_by_name += 1
      qa.append(schema.qa_example(rid, query, gold, index[gold], hub,
                                  source_id=f"{eval_file}:{line_no}", tags=tags))
    pool_stats[hub]["gold_matched_by_api_name"] = n_by_name
  report.note("pools", pool_stats)
  return ec.Conversion(tools=tools, qa={"test": qa}, report=report)


class Builder(ec.ExternalBuilder):
  """APIBench HF / TF Hub / Torch Hub instructions and API pools; group = the hub."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: 3 hubs, pool entries merged by api_call."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put the APIBench raw files, unchanged, in manual_dir: huggingface_api.jsonl,
  tensorflowhub_api.jsonl, torchhub_api.jsonl (data/api/) and huggingface_eval.json,
  tensorflow_eval.json, torchhub_eval.json (data/apibench/) from
  https://github.com/ShishirPatil/gorilla at commit 6ea5797. In this project:
  manual_dir=../shared/external_data/gorilla_apibench. Without them the builder downloads the
  files from the pinned URLs and checks their sha256 (checksums.tsv).
  """
  URLS = URLS
  HOMEPAGE = "https://github.com/ShishirPatil/gorilla"
  LICENSE = "Apache-2.0"

  def _convert(self, paths):
    return convert(paths)
