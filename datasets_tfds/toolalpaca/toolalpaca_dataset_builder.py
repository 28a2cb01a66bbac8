"""ToolAlpaca evaluation sets (Tang et al. 2023): single-function instructions, in our schema.

Raw files (tangqiaoyu/ToolAlpaca at commit 1890699): ``eval_real.json`` (11 real APIs) and
``eval_simulated.json`` (10 simulated APIs). Each API lists its functions
(``Function_Description``, minus the pseudo-key ``components``), its ``Instructions`` and their
``Golden_Answers`` (a list of {Action, Action_Input} steps). Fields that are Python-literal strings
are read with ``ast.literal_eval``.

A tool is one function, named "<API name>.<function name>" (unique across both files), grouped by
its API: the API's other functions are the natural same-domain distractors and the candidate list.
An instruction is kept when every step of its gold answer calls the same documented function; its
arguments are those of the first step (the tag "repeated_call" marks golds that call the function
more than once). Instructions whose answer calls two or more functions, or a function that the
file does not document, are counted in the card and not converted.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re

import tensorflow_datasets as tfds

from datasets_tfds import external_common as ec
from datasets_tfds import schema

COMMIT = "189069998d64a7baf1b4a1c3c4b2e75eb9d05532"
_RAW = f"https://raw.githubusercontent.com/tangqiaoyu/ToolAlpaca/{COMMIT}/data"
URLS = {
    "eval_real.json": f"{_RAW}/eval_real.json",
    "eval_simulated.json": f"{_RAW}/eval_simulated.json",
}
SUBSETS = (("real", "eval_real.json"), ("simulated", "eval_simulated.json"))
_DOC = re.compile(r"^(.*?)\n?Parameters: (.*?)\nOutput: (.*)$", re.S)
_SIMPLE_TYPES = {"string": "string", "integer": "integer", "number": "number",
                 "boolean": "boolean", "object": "object"}


def literal(value):
  """A field that is either the value itself or its Python-literal text."""
  return ast.literal_eval(value) if isinstance(value, str) else value


def _param(spec: str) -> tuple[dict, bool]:
  """'Required. integer. The year.' -> ({"type": "integer", "description": "The year."}, True)."""
  required = spec.startswith("Required.")
  rest = spec[len("Required."):].strip() if required else spec.strip()
  type_str, _, desc = rest.partition(". ")
  type_str = type_str.strip().rstrip(".")
  low = type_str.lower()
  prop: dict = {}
  if low in _SIMPLE_TYPES:
    prop["type"] = _SIMPLE_TYPES[low]
  elif low.startswith("array["):
    prop["type"] = "array"
    item = low[len("array["):].rstrip("]")
    if item in _SIMPLE_TYPES:
      prop["items"] = {"type": _SIMPLE_TYPES[item]}
  elif low.startswith("object"):
    prop["type"] = "object"
  else:  # not a type word: the whole text is the description
    desc = rest
  prop["description"] = desc.strip()
  return prop, required


def parse_function_doc(text: str) -> tuple[str, dict | None]:
  """ToolAlpaca's "summary\\nParameters: {json}\\nOutput: ..." -> (summary, JSON schema or None)."""
  m = _DOC.match(text.strip())
  if not m:
    return text.strip(), None
  try:
    params = json.loads(m.group(2))
  except json.JSONDecodeError:
    return m.group(1).strip(), None
  props, required = {}, []
  for name, spec in params.items():
    props[name], req = _param(str(spec))
    if req:
      required.append(name)
  return m.group(1).strip(), {"type": "object", "properties": props, "required": required}


def convert(paths: dict[str, pathlib.Path]) -> ec.Conversion:
  report = ec.ConversionReport()
  tools, qa = [], []
  n_from_api = n_params_unparsed = n_args_unparsed = n_repeated = 0
  for subset, fname in SUBSETS:
    apis = json.loads(paths[fname].read_text(encoding="utf-8"))
    for a_i, api in enumerate(apis):
      api_name = api["Name"]
      try:
        functions = {k: v for k, v in literal(api["Function_Description"]).items()
                     if k != "components"}
        instructions = literal(api["Instructions"])
        answers = literal(api["Golden_Answers"])
      except (ValueError, SyntaxError, KeyError, AttributeError):
        report.drop("API record does not parse (all its instructions)", f"{fname}[{a_i}]")
        continue
      names = {}
      for fn, doc in functions.items():
        summary, params = parse_function_doc(str(doc))
        if not summary:  # e.g. airportsapi's one function has no summary: use the API's
          summary = (api.get("Description") or "").strip()
          n_from_api += 1
        if params is None:
          n_params_unparsed += 1
        names[fn] = f"{api_name}.{fn}"
        tools.append(schema.tool_example(len(tools), names[fn], summary, params or {},
                                         api_name, "test"))
      index = {t["name"]: t["index"] for t in tools}
      if len(instructions) != len(answers):
        report.note(f"length_mismatch_{fname}[{a_i}]", [len(instructions), len(answers)])
      for j, query in enumerate(instructions):
        rid = f"toolalpaca-{subset}-{a_i:02d}-{j:02d}"
        try:
          steps = literal(answers[j]) if j < len(answers) else None
          actions = [s["Action"] for s in steps]
        except (ValueError, SyntaxError, KeyError, TypeError, IndexError):
          report.drop("gold answer missing or unparseable", rid)
          continue
        if not steps:
          report.drop("empty gold answer", rid)
        elif len(set(actions)) > 1:
          report.drop("gold answer calls 2+ different functions (multi-step)", rid)
        elif actions[0] not in names:
          report.drop("gold function not documented in the file (no description)", rid)
        else:
          tags = [subset]
          if len(steps) > 1:
            tags.append("repeated_call")
            n_repeated += 1
          try:
            args = json.loads(steps[0].get("Action_Input") or "{}")
            if not isinstance(args, dict):
              raise ValueError("not an object")
          except ValueError:
            args = {}
            tags.append("arguments_unparsed")
            n_args_unparsed += 1
          tool = names[actions[0]]
          qa.append(schema.qa_example(
              rid, str(query).strip(), tool, index[tool], api_name, arguments=args,
              candidates=list(names.values()),
              source_id=f"{fname}[{a_i}].Instructions[{j}]", tags=tags))
  report.note("descriptions_from_api_description", n_from_api)
  report.note("parameters_unparsed", n_params_unparsed)
  report.note("tagged_repeated_call", n_repeated)
  report.note("tagged_arguments_unparsed", n_args_unparsed)
  return ec.Conversion(tools=tools, qa={"test": qa}, report=report)


class Builder(ec.ExternalBuilder):
  """ToolAlpaca eval_real + eval_simulated, single-function instructions; group = the API."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: 94 functions of 21 APIs, single-function golds."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put the ToolAlpaca raw files, unchanged, in manual_dir: eval_real.json and eval_simulated.json
  from https://github.com/tangqiaoyu/ToolAlpaca at commit 1890699 (data/). In this project:
  manual_dir=../shared/external_data/toolalpaca. Without them the builder downloads the files from
  the pinned URLs and checks their sha256 (checksums.tsv).
  """
  URLS = URLS
  HOMEPAGE = "https://github.com/tangqiaoyu/ToolAlpaca"
  LICENSE = "Apache-2.0"

  def _convert(self, paths):
    return convert(paths)
