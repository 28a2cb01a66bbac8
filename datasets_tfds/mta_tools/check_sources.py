"""Checks the hand-written MTA-Tools domain sources before synthesis.

Usage: ``python3 datasets_tfds/mta_tools/check_sources.py sources/office.json [...]``
(no arguments: every domain file of release 1.0.0; ``sources/1.1.0``: every domain file of
that release). Standard library only, so that authors can run it
without the project's virtual environment.

Every problem is reported as ``file:line: json.path: message``; the line is found by
locating the offending value in the raw text (JSON parsers do not keep positions).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import sys
from typing import Any

SOURCES_DIR = pathlib.Path(__file__).resolve().parent / "sources"
COMMON_POOLS = SOURCES_DIR / "common_pools.json"

# The paper's seven domains, in its order, with the tool counts we commit to.
DOMAIN_FILES = {
    "Office": ("office.json", 24),
    "OS": ("os.json", 22),
    "SD": ("sd.json", 23),
    "Edu": ("edu.json", 21),
    "DL": ("dl.json", 22),
    "IoT": ("iot.json", 22),
    "App": ("app.json", 21),
}
AUTHORED_STYLES = ("direct", "indirect", "colloquial", "long", "terse")
MIN_STYLE = {"direct": 3, "indirect": 7, "colloquial": 1, "long": 1, "terse": 1}
MIN_TEMPLATES = 18
MIN_POOL = 5
MIN_SIBLING_GROUPS = 6
LONG_MIN_WORDS = 25
JSON_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
}
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# `{param}` is an argument slot, `{~pool}` a filler that is not an argument.
SLOT_RE = re.compile(r"\{(~?)([A-Za-z_][A-Za-z0-9_]*)\}")
JOINT_PREFIX = "joint_"


@dataclasses.dataclass(frozen=True)
class Problem:
  file: str
  line: int
  where: str
  message: str

  def __str__(self) -> str:
    return f"{self.file}:{self.line}: {self.where}: {self.message}"


class _Locator:
  """Maps a JSON value back to the first line of the raw text that contains it."""

  def __init__(self, text: str):
    self._lines = text.splitlines()

  def line_of(self, *needles: Any, start: int = 1) -> int:
    for needle in needles:
      if needle is None:
        continue
      encoded = json.dumps(needle, ensure_ascii=False)
      for i in range(max(start, 1) - 1, len(self._lines)):
        if encoded in self._lines[i] or (isinstance(needle, str) and needle in self._lines[i]):
          return i + 1
    return max(start, 1)


def value_matches_type(value: Any, schema: dict) -> bool:
  """True when ``value`` has the JSON type (and enum membership) that ``schema`` asks."""
  typ = schema.get("type")
  if typ not in JSON_TYPES:
    return False
  if isinstance(value, bool) and typ in ("integer", "number"):
    return False
  if not isinstance(value, JSON_TYPES[typ]):
    return False
  if "enum" in schema and value not in schema["enum"]:
    return False
  if typ == "array":
    items = schema.get("items", {})
    return all(value_matches_type(v, items) for v in value) if items.get("type") else True
  return True


def pool_entry(entry: Any) -> tuple[str, Any]:
  """Returns (surface text, argument value) of one pool entry."""
  if isinstance(entry, dict):
    return str(entry["text"]), entry["value"]
  if isinstance(entry, list):
    return ", ".join(str(v) for v in entry), entry
  return str(entry), entry


def template_skeleton(text: str) -> str:
  """The template with slots removed, case and spacing folded: phrasings compare on it."""
  text = SLOT_RE.sub("<>", text.lower())
  return re.sub(r"[^a-z<> ]+", " ", re.sub(r"\s+", " ", text)).strip()


def joint_field(pools: dict, ref: str) -> list | None:
  """The entries a slot draws from: a pool, or one field of a joint pool (``joint_x.field``);
  None when there is no such pool or field."""
  if "." not in ref:
    return pools.get(ref)
  pool, field = ref.split(".", 1)
  rows = pools.get(pool)
  if not pool.startswith(JOINT_PREFIX) or not rows or not all(
      isinstance(r, dict) and field in r for r in rows):
    return None
  return [r[field] for r in rows]


def _name_words(name: str) -> set[str]:
  return {w for w in name.split("_") if len(w) >= 2}


def mentions_name(text: str, name: str) -> str | None:
  """Returns a word of the tool name that ``text`` uses (with simple inflections), if any."""
  words = set(re.findall(r"[a-z]+", SLOT_RE.sub(" ", text.lower())))
  for w in _name_words(name):
    forms = {w, w + "s", w + "es", w + "ed", w + "d", w + "ing", w + "er", w + "ers"}
    if w.endswith("e"):
      forms |= {w[:-1] + "ing"}
    if len(w) >= 3 and w[-1] not in "aeiouwy":
      forms |= {w + w[-1] + "ing", w + w[-1] + "ed"}
    if w.endswith("y"):
      forms |= {w[:-1] + "ies", w[:-1] + "ied"}
    hit = words & forms
    if hit:
      return sorted(hit)[0]
  return None


def _check_schema(params: Any, where: str, report) -> dict:
  if not isinstance(params, dict) or params.get("type") != "object":
    report(where, "parameters must be a JSON schema with type 'object'")
    return {}
  props = params.get("properties")
  if not isinstance(props, dict):
    report(where, "parameters.properties must be an object")
    return {}
  for pname, p in props.items():
    pw = f"{where}.properties.{pname}"
    if not NAME_RE.match(pname):
      report(pw, "parameter names are snake_case")
    if not isinstance(p, dict) or p.get("type") not in JSON_TYPES:
      report(pw, f"type must be one of {sorted(JSON_TYPES)}")
      continue
    if not isinstance(p.get("description"), str) or not p["description"].strip():
      report(pw, "every parameter needs a description")
    if "enum" in p:
      if not isinstance(p["enum"], list) or len(p["enum"]) < 2:
        report(pw, "enum must be a list of at least 2 values")
      elif not all(value_matches_type(v, {"type": p["type"]}) for v in p["enum"]):
        report(pw, f"enum values must all be of type {p['type']}")
    if p["type"] == "array" and not isinstance(p.get("items"), dict):
      report(pw, "array parameters need 'items'")
  required = params.get("required", [])
  if not isinstance(required, list) or any(r not in props for r in required):
    report(f"{where}.required", f"required must list parameters that exist, got {required}")
  return props


def check_domain(path: pathlib.Path, common: dict, expected_domain: str | None = None,
                 expected_count: int | None = None,
                 states_required: bool = False) -> list[Problem]:
  """Checks one domain file; returns every problem found (empty when the file is fine).
  ``states_required`` (release 1.1.0+, whose every gold call must be valid): every template
  states each required parameter of its tool."""
  problems: list[Problem] = []
  text = path.read_text(encoding="utf-8")
  loc = _Locator(text)

  def report(where: str, message: str, *needles: Any, start: int = 1) -> None:
    problems.append(Problem(str(path), loc.line_of(*needles, start=start), where, message))

  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    return [Problem(str(path), e.lineno, f"column {e.colno}", f"invalid JSON: {e.msg}")]

  for key in ("domain", "domain_name", "scenario", "pools", "tools"):
    if key not in data:
      report(key, "missing top-level field")
  if problems:
    return problems
  if expected_domain and data["domain"] != expected_domain:
    report("domain", f"expected {expected_domain!r}, got {data['domain']!r}", "domain")
  pools = dict(common)
  for pname, values in data["pools"].items():
    if pname in common:
      report(f"pools.{pname}", "shadows a pool of common_pools.json: rename it", pname)
    pools[pname] = values
  for pname, values in data["pools"].items():
    if not isinstance(values, list) or len(values) < MIN_POOL:
      report(f"pools.{pname}", f"a pool needs at least {MIN_POOL} values", f'"{pname}"')
      continue
    if pname.startswith(JOINT_PREFIX):
      # A joint pool (release 1.1.0+): each row is {field: entry}, read by slots as
      # "joint_x.field"; the fields of one row are drawn together so their values agree.
      fields = set(values[0]) if isinstance(values[0], dict) else set()
      for i, e in enumerate(values):
        if not isinstance(e, dict) or set(e) != fields or not fields:
          report(f"pools.{pname}[{i}]", f"a joint pool's rows are objects with the same fields "
                 f"{sorted(fields)}", f'"{pname}"')
      continue
    for i, e in enumerate(values):
      if isinstance(e, dict) and ({"text", "value"} - set(e)):
        report(f"pools.{pname}[{i}]", "an object entry needs 'text' and 'value'", f'"{pname}"')
    texts = [pool_entry(e)[0] for e in values if not isinstance(e, dict) or "text" in e]
    if len(set(texts)) != len(texts):
      report(f"pools.{pname}", "duplicate values", f'"{pname}"')

  tools = data["tools"]
  if expected_count is not None and len(tools) != expected_count:
    report("tools", f"expected exactly {expected_count} tools, found {len(tools)}", '"tools"')
  names: set[str] = set()
  groups: dict[str, list[str]] = {}
  for ti, tool in enumerate(tools):
    name = tool.get("name", "")
    tw = f"tools[{ti}]({name})"
    tline = loc.line_of(f'"name": "{name}"', name)

    def treport(where: str, message: str, *needles: Any) -> None:
      report(where, message, *needles, start=tline)

    if not NAME_RE.match(name or ""):
      treport(f"{tw}.name", "name must be snake_case", name)
    if name in names:
      treport(f"{tw}.name", "duplicate tool name", name)
    names.add(name)
    for key in ("group", "weight", "description", "parameters", "slots", "templates"):
      if key not in tool:
        treport(f"{tw}.{key}", "missing field")
    if any(k not in tool for k in ("group", "description", "parameters", "templates")):
      continue
    groups.setdefault(tool["group"], []).append(name)
    if tool.get("weight") not in (1, 2, 3):
      treport(f"{tw}.weight", "weight must be 1, 2 or 3", '"weight"')
    desc = tool["description"]
    n_sent = len(re.findall(r"[.!?](\s|$)", desc.strip()))
    if not 1 <= n_sent <= 3:
      treport(f"{tw}.description", f"1 to 3 sentences, found {n_sent}", desc[:40])
    props = _check_schema(tool["parameters"], f"{tw}.parameters", treport)
    slots = tool.get("slots", {})
    for param, pool in slots.items():
      if param not in props:
        treport(f"{tw}.slots.{param}", "slot names a parameter the schema lacks", f'"{param}"')
        continue
      entries = joint_field(pools, pool)
      if entries is None:
        treport(f"{tw}.slots.{param}", f"unknown pool {pool!r}", f'"{pool}"')
        continue
      for i, e in enumerate(entries):
        if isinstance(e, dict) and "value" not in e:
          continue
        value = pool_entry(e)[1]
        if not value_matches_type(value, props[param]):
          treport(f"{tw}.slots.{param}", f"pool {pool!r} entry {i} value {value!r} is not valid "
                  f"for {props[param].get('type')}" + (
                      f" with enum {props[param]['enum']}" if "enum" in props[param] else ""),
                  f'"{pool}"')
    templates = tool["templates"]
    if len(templates) < MIN_TEMPLATES:
      treport(f"{tw}.templates", f"at least {MIN_TEMPLATES} templates, found {len(templates)}",
              '"templates"')
    counts = {s: 0 for s in AUTHORED_STYLES}
    skeletons: dict[str, int] = {}
    for j, tpl in enumerate(templates):
      jw = f"{tw}.templates[{j}]"
      ttext = tpl.get("text", "") if isinstance(tpl, dict) else ""
      style = tpl.get("style") if isinstance(tpl, dict) else None
      if style not in AUTHORED_STYLES:
        treport(f"{jw}.style", f"style must be one of {AUTHORED_STYLES}", ttext)
        continue
      counts[style] += 1
      if not ttext.strip():
        treport(f"{jw}.text", "empty template")
        continue
      seen_params: set[str] = set()
      tslots = dict(slots)
      for param, pool in (tpl.get("slots") or {}).items():
        # A template may draw a parameter from its own pool (release 1.1.0+): "the heaviest
        # programs" is sorted by CPU or memory, never by PID.
        entries = joint_field(pools, pool)
        if param not in props or entries is None:
          treport(f"{jw}.slots.{param}", f"unknown parameter or pool {pool!r}", ttext)
          continue
        bad = [pool_entry(e)[1] for e in entries if not value_matches_type(
            pool_entry(e)[1], props[param])]
        if bad:
          treport(f"{jw}.slots.{param}", f"pool {pool!r} value {bad[0]!r} is not valid", ttext)
        tslots[param] = pool
      for filler, slot in SLOT_RE.findall(ttext):
        if filler:
          if slot not in pools:
            treport(f"{jw}.text", f"unknown filler pool {{~{slot}}}", ttext)
        elif slot not in tslots:
          treport(f"{jw}.text", f"{{{slot}}} is not in the tool's slots", ttext)
        elif slot in seen_params:
          treport(f"{jw}.text", f"{{{slot}}} appears twice", ttext)
        seen_params.add(slot)
      required = tool["parameters"].get("required", []) if isinstance(tool["parameters"], dict) else []
      missing = [p for p in required if p not in seen_params]
      if states_required and missing:
        treport(f"{jw}.text", f"states no value for the required {', '.join(missing)}", ttext)
      if "{" in SLOT_RE.sub("", ttext) or "}" in SLOT_RE.sub("", ttext):
        treport(f"{jw}.text", "stray brace: slots are {param} or {~pool}", ttext)
      skel = template_skeleton(ttext)
      if skel in skeletons:
        treport(f"{jw}.text", f"same phrasing as templates[{skeletons[skel]}] once slots are "
                "removed", ttext)
      skeletons.setdefault(skel, j)
      if style == "indirect":
        word = mentions_name(ttext, name)
        if word:
          treport(f"{jw}.text", f"indirect template uses {word!r}, a word of the tool name", ttext)
      if style == "long" and len(ttext.split()) < LONG_MIN_WORDS:
        treport(f"{jw}.text", f"long templates have {LONG_MIN_WORDS}+ words", ttext)
    for style, minimum in MIN_STYLE.items():
      if counts[style] < minimum:
        treport(f"{tw}.templates", f"at least {minimum} {style!r} templates, found "
                f"{counts[style]}", '"templates"')
  siblings = [g for g, members in groups.items() if len(members) >= 2]
  if len(siblings) < MIN_SIBLING_GROUPS:
    report("tools", f"at least {MIN_SIBLING_GROUPS} sibling groups of 2+ tools, found "
           f"{len(siblings)}: {sorted(siblings)}", '"tools"')
  return problems


def load_common(sources_dir: pathlib.Path = SOURCES_DIR) -> dict:
  data = json.loads((sources_dir / COMMON_POOLS.name).read_text(encoding="utf-8"))
  return {k: v for k, v in data.items() if not k.startswith("_")}


def check_all(paths: list[pathlib.Path] | None = None,
              sources_dir: pathlib.Path = SOURCES_DIR) -> list[Problem]:
  """Checks the given domain files (default: all seven of ``sources_dir``) and cross-file name
  uniqueness; ``sources_dir`` is ``sources/`` (release 1.0.0) or ``sources/<version>/``."""
  common = load_common(sources_dir)
  by_file = {fn: (dom, n) for dom, (fn, n) in DOMAIN_FILES.items()}
  if paths is None:
    paths = [sources_dir / fn for fn, _ in DOMAIN_FILES.values()]
  problems: list[Problem] = []
  seen: dict[str, str] = {}
  for path in paths:
    if not path.exists():
      problems.append(Problem(str(path), 0, "file", "missing domain file"))
      continue
    dom, n = by_file.get(path.name, (None, None))
    problems += check_domain(path, common, dom, n,
                             states_required=sources_dir.resolve() != SOURCES_DIR.resolve())
    try:
      tools = json.loads(path.read_text(encoding="utf-8")).get("tools", [])
    except json.JSONDecodeError:
      continue
    for t in tools:
      other = seen.get(t.get("name"))
      if other and other != str(path):
        problems.append(Problem(str(path), 0, f"tools.{t['name']}",
                                f"tool name also used in {other}"))
      seen.setdefault(t.get("name"), str(path))
  return problems


def main(argv: list[str]) -> int:
  paths = [pathlib.Path(a).resolve() for a in argv[1:]] or None
  if paths and len(paths) == 1 and paths[0].is_dir():  # a release's folder, e.g. sources/1.1.0
    problems = check_all(None, paths[0])
  else:
    problems = check_all(paths, paths[0].parent if paths else SOURCES_DIR)
  for p in problems:
    print(p)
  if problems:
    print(f"{len(problems)} problem(s)")
    return 1
  print("OK")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
