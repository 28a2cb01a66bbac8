"""API-Bank level-1 (Li et al., EMNLP 2023): 399 single-call dialogues over 49 APIs, in our schema.

Raw files (AlibabaResearch/DAMO-ConvAI at commit 5d5a2d4, api-bank/): ``level-1-api.json``
(the records) and ``all_apis.csv`` (each API's application scenario, used as its group).

Per record: the candidates are the JSON lines after "API descriptions:" in ``instruction``; the
gold API and its arguments come from ``expected_output`` ("API-Request: [Name(k='v', ...)]"); the
query is the user's turns of ``input``, joined by newlines (earlier AI turns and API calls are
left out). The 82 records whose gold is ``GetUserToken`` (a login step that the dialogue, not the
user's intent, decides) carry the tag "GetUserToken" so results can be given without them.
"""

from __future__ import annotations

import ast
import collections
import csv
import json
import pathlib
import re

import tensorflow_datasets as tfds

from datasets_tfds import external_common as ec
from datasets_tfds import schema

COMMIT = "5d5a2d40b2e6b6998a06961cc43ad0a8c069b153"
_RAW = f"https://raw.githubusercontent.com/AlibabaResearch/DAMO-ConvAI/{COMMIT}/api-bank"
URLS = {
    "level-1-api.json": f"{_RAW}/test-data/level-1-api.json",
    "all_apis.csv": f"{_RAW}/data/all_apis.csv",
}
# all_apis.csv's 应用场景 (application scenario) column, in English: the tool groups.
SCENARIOS = {
    "账户管理": "account_management",
    "日程安排和管理": "schedule_management",
    "信息查询和处理": "information_query",
    "健康管理": "health_management",
    "智能家居控制": "smart_home",
    "财务管理": "finance",
    "娱乐消遣": "entertainment",
    "旅游出行": "travel",
    "学习科研相关": "study_and_research",
    "工作相关": "work",
    "钉钉": "dingtalk",
}
_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
          "list": "array", "dict": "object"}
_GOLD = re.compile(r"API-Request: \[(\w+)\((.*)\)\]\s*$", re.S)
_TURN = re.compile(r"^(User|AI|API-Request|Generate API Request):\s?(.*)$")
LOGIN_API = "GetUserToken"


class ParseError(ValueError):
  pass


def json_schema(input_parameters: dict) -> dict:
  """API-Bank's {name: {type, description}} -> a JSON schema (API-Bank marks nothing required)."""
  props = {}
  for name, spec in input_parameters.items():
    t = spec.get("type", "")
    prop = {"type": _TYPES.get(t, t)}
    m = re.fullmatch(r"list\((\w+)\)", t)
    if m:
      prop = {"type": "array", "items": {"type": _TYPES.get(m.group(1), m.group(1))}}
    prop["description"] = spec.get("description", "")
    props[name] = prop
  return {"type": "object", "properties": props}


def parse_candidates(instruction: str) -> list[dict]:
  marker = "API descriptions:\n"
  if marker not in instruction:
    raise ParseError("no 'API descriptions:' in instruction")
  apis = []
  for line in instruction.split(marker, 1)[1].splitlines():
    if line.strip():
      try:
        apis.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise ParseError(f"API description is not JSON: {e}") from e
  if not apis:
    raise ParseError("empty candidate list")
  return apis


def _split_kwargs(text: str) -> dict:
  """Fallback for calls that are not Python: ``k='v', k2='[...]'`` split at ``, name=``.

  API-Bank writes some list arguments inside single quotes that also quote their items
  (``attendees='['John Smith', 'Jane Doe']'``); the quoted list is then read as a literal.
  """
  parts = re.split(r"(?:^|,\s*)(\w+)=", text.strip())
  if parts[0].strip():
    raise ParseError(f"text before the first keyword: {parts[0]!r}")
  args = {}
  for key, raw in zip(parts[1::2], parts[2::2]):
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
      inner = raw[1:-1]
      if inner[:1] in "[{":
        try:
          args[key] = ast.literal_eval(inner)
          continue
        except (SyntaxError, ValueError):
          pass
      args[key] = inner
    else:
      try:
        args[key] = ast.literal_eval(raw)
      except (SyntaxError, ValueError) as e:
        raise ParseError(f"argument {key} does not parse: {raw!r}") from e
  return args


def parse_gold(expected_output: str) -> tuple[str, dict, str]:
  """``API-Request: [Name(k='v', ...)]`` -> (Name, {k: v}, how the arguments were read).

  How: "python" (the call is a Python call with literal values), "repaired" (read by
  :func:`_split_kwargs`), or "unparsed" (arguments left as {}; the record is kept and tagged).
  """
  m = _GOLD.match(expected_output.strip())
  if not m:
    raise ParseError("expected_output is not one 'API-Request: [Name(...)]'")
  name, text = m.group(1), m.group(2)
  try:
    call = ast.parse(f"f({text})", mode="eval").body
    if not call.args:
      return name, {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}, "python"
  except (SyntaxError, ValueError):
    pass
  try:
    return name, _split_kwargs(text), "repaired"
  except ParseError:
    return name, {}, "unparsed"


def user_turns(dialogue: str) -> str:
  """The user's turns of an API-Bank ``input``, newline-joined (continuation lines kept)."""
  turns, speaker = [], None
  for line in dialogue.splitlines():
    m = _TURN.match(line)
    if m:
      speaker = m.group(1)
      if speaker == "User":
        turns.append(m.group(2))
    elif speaker == "User" and line.strip():
      turns[-1] += "\n" + line
  query = "\n".join(t.strip() for t in turns).strip()
  if not query:
    raise ParseError("no user turn")
  return query


def read_groups(path: pathlib.Path) -> dict[str, str]:
  """{API class name: English scenario} from all_apis.csv."""
  groups = {}
  with open(path, newline="", encoding="utf-8") as f:
    for row in csv.DictReader(f):
      scenario = (row.get("应用场景") or "").strip()
      groups[(row.get("类名") or "").strip()] = SCENARIOS.get(scenario, scenario)
  return groups


def convert(paths: dict[str, pathlib.Path]) -> ec.Conversion:
  report = ec.ConversionReport()
  records = json.loads(paths["level-1-api.json"].read_text(encoding="utf-8"))
  groups = read_groups(paths["all_apis.csv"])
  apis: dict[str, dict] = {}
  parsed = []
  n_args = collections.Counter()
  for i, rec in enumerate(records):
    rid = f"api_bank-{i:03d}"
    try:
      cands = parse_candidates(rec["instruction"])
      gold, args, how = parse_gold(rec["expected_output"])
      query = user_turns(rec["input"])
    except (ParseError, KeyError, TypeError) as e:
      report.drop(f"unparseable record ({type(e).__name__})", rid)
      continue
    for api in cands:
      apis.setdefault(api["name"], api)
    if gold not in {a["name"] for a in cands}:
      report.drop("gold API not among the record's candidates", rid)
      continue
    n_args[how] += 1
    tags = [LOGIN_API] if gold == LOGIN_API else []
    if how == "unparsed":
      tags.append("arguments_unparsed")
    parsed.append((i, rid, rec, [a["name"] for a in cands], gold, args, query, tags))

  names = sorted(apis)
  ungrouped = [n for n in names if n not in groups]
  report.note("apis_without_scenario", ungrouped)
  group = {n: groups.get(n, "unknown") for n in names}
  tools = [schema.tool_example(i, n, apis[n].get("description", "").strip(),
                               json_schema(apis[n].get("input_parameters", {})), group[n], "test")
           for i, n in enumerate(names)]
  index = {n: i for i, n in enumerate(names)}
  qa = []
  for i, rid, rec, cands, gold, args, query, tags in parsed:
    if not tools[index[gold]]["description"]:
      report.drop("gold API has no description", rid)
      continue
    qa.append(schema.qa_example(
        rid, query, gold, index[gold], group[gold], arguments=args, candidates=cands,
        source_id=f"level-1-api.json[{i}] {rec.get('file', '')}#{rec.get('id', '')}",
        tags=tags))
  report.note("records_read", len(records))
  report.note("gold_arguments_read", dict(sorted(n_args.items())))
  report.note("tagged_GetUserToken", sum(LOGIN_API in ex["tags"] for ex in qa))
  return ec.Conversion(tools=tools, qa={"test": qa}, report=report)


class Builder(ec.ExternalBuilder):
  """API-Bank level-1: one test split; tools grouped by API-Bank's application scenario."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: 49 APIs, 399 level-1 queries (82 GetUserToken)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put the API-Bank raw files, unchanged, in manual_dir: level-1-api.json and all_apis.csv from
  https://github.com/AlibabaResearch/DAMO-ConvAI at commit 5d5a2d4 (api-bank/test-data/ and
  api-bank/data/). In this project: manual_dir=../shared/external_data/api_bank. Without them
  the builder downloads the files from the pinned URLs and checks their sha256 (checksums.tsv).
  """
  URLS = URLS
  HOMEPAGE = "https://github.com/AlibabaResearch/DAMO-ConvAI/tree/main/api-bank"
  LICENSE = "Apache-2.0"

  def _convert(self, paths):
    return convert(paths)
