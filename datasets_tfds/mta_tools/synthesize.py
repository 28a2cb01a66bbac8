"""Data synthesis: the hand-written sources -> the released ``data/tools.jsonl`` and ``data/qa.jsonl``.

Deterministic (fixed seeds derived from tool names, no global randomness): rerunning it on the
same sources gives byte-identical files, so the committed JSONL can be diffed and reviewed.

Stages (the paper's last two, after scenario definition, tool development and documentation,
which live in ``sources/``):
1. check the sources (``check_sources.py``);
2. allocate the 9,377 pairs over the 155 tools: 40 each, the rest in proportion to the tools'
   usage weights (largest remainder);
3. per tool, cycle through its templates in a seeded order and fill slots from the value pools,
   rejecting duplicates; a seeded 8% of pairs get realistic typing errors outside the slot values
   (style ``typo``), so the gold arguments stay exactly what the query says;
4. split tools, per domain, into train / validation / test (seen / validation / unseen tools).

Releases (``VERSIONS``): 1.0.0 from ``sources/*.json`` into ``data/{tools,qa}.jsonl`` (frozen:
the files stay byte-identical); 1.1.0 from ``sources/1.1.0/`` into ``data/1.1.0/`` with the
1.1 rules on top of the stages above: joint slot pools (values that must agree, such as one OS
per call or a plausible distance and time, are drawn together), ISO dates resolved against one
reference date (``dates.REFERENCE_DATE``, stored in every record), typo rows that differ from
their clean form (kept in ``typo_of``), no doubled articles, seeded paraphrase rules
(``sources/1.1.0/paraphrase.json``; the realized template is kept in ``template_text``), and
``metadata.json`` (reference date, test-tool subsets).

Usage: ``python datasets_tfds/mta_tools/synthesize.py [--check] [--version=all|1.0.0|1.1.0]``
(``--check``: fail if the committed files differ from what the sources produce).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import random
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import check_sources as cs  # pylint: disable=wrong-import-position
import dates  # pylint: disable=wrong-import-position

DATA_DIR = HERE / "data"
VERSIONS = ("1.0.0", "1.1.0")
DEFAULT_VERSION = "1.0.0"  # what every consumer reads unless it asks for another version
LATEST_VERSION = "1.1.0"
TOTAL_PAIRS = 9377
MIN_PAIRS = 40
TYPO_RATE = 0.08
TEST_FRACTION, VAL_FRACTION, MIN_TEST = 0.25, 0.10, 5
SPLIT_SEED = 20260128
MAX_TRIES = 200


def _seed(*parts) -> int:
  return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big")


def sources_dir(version: str = DEFAULT_VERSION) -> pathlib.Path:
  """``sources/`` for 1.0.0, ``sources/<version>/`` after it."""
  _check_version(version)
  return cs.SOURCES_DIR if version == "1.0.0" else cs.SOURCES_DIR / version


def data_dir(version: str = DEFAULT_VERSION) -> pathlib.Path:
  """``data/`` for 1.0.0 (the committed first release), ``data/<version>/`` after it."""
  _check_version(version)
  return DATA_DIR if version == "1.0.0" else DATA_DIR / version


def _check_version(version: str) -> None:
  if version not in VERSIONS:
    raise ValueError(f"unknown MTA-Tools version {version!r}; known: {', '.join(VERSIONS)}")


def load_sources(version: str = DEFAULT_VERSION) -> tuple[list[dict], dict]:
  """All domains (in the paper's order) with tools annotated by domain; and the common pools."""
  src = sources_dir(version)
  problems = cs.check_all(sources_dir=src)
  if problems:
    raise SystemExit("sources have problems:\n" + "\n".join(map(str, problems)))
  common = cs.load_common(src)
  domains = []
  for code, (fname, _) in cs.DOMAIN_FILES.items():
    data = json.loads((src / fname).read_text(encoding="utf-8"))
    data["pools"] = {**common, **data["pools"]}
    domains.append(data)
  return domains, common


def allocate(weights: list[int], total: int = TOTAL_PAIRS, floor: int = MIN_PAIRS) -> list[int]:
  """floor pairs per tool plus the rest in proportion to weight (largest remainder, stable)."""
  rest = total - floor * len(weights)
  if rest < 0:
    raise ValueError(f"{total} pairs cannot give {floor} to each of {len(weights)} tools")
  quotas = [rest * w / sum(weights) for w in weights]
  counts = [int(q) for q in quotas]
  order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
  for i in order[:rest - sum(counts)]:
    counts[i] += 1
  return [floor + c for c in counts]


_KEYBOARD_NEIGHBOURS = dict(zip("qwertyuiopasdfghjklzxcvbnm", [
    "wa", "qes", "wrd", "etf", "ryg", "tuh", "yij", "uok", "ipl", "ol", "qsz", "awdx", "sefc",
    "drgv", "fthb", "gyjn", "hukm", "jil", "kop", "asx", "zdc", "xfv", "cgb", "vhn", "bjm", "nk"]))


def add_typos(template: str, rng: random.Random) -> str:
  """1-2 realistic typing errors in words of the template outside its {slots}."""
  pieces = re.split(r"(\{~?\w+\})", template)
  words = [(pi, m.start(), m.group()) for pi, piece in enumerate(pieces) if not piece.startswith("{")
           for m in re.finditer(r"[A-Za-z]{4,}", piece)]
  if not words:
    return template
  for pi, start, word in rng.sample(words, k=min(len(words), rng.choice((1, 1, 2)))):
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("swap", "drop", "double", "neighbour"))
    if kind == "swap":
      new = word[:i] + word[i + 1] + word[i] + word[i + 2:]
    elif kind == "drop":
      new = word[:i] + word[i + 1:]
    elif kind == "double":
      new = word[:i] + word[i] + word[i:]
    else:
      c = word[i].lower()
      new = word[:i] + rng.choice(_KEYBOARD_NEIGHBOURS.get(c, c)) + word[i + 1:]
    piece = pieces[pi]
    # Re-find the word: an earlier edit in the same piece may have shifted offsets.
    at = piece.find(word, max(0, start - 2))
    at = at if at >= 0 else piece.find(word)
    if at >= 0:
      pieces[pi] = piece[:at] + new + piece[at + len(word):]
  return "".join(pieces)


def fill(template: str, slots: dict, pools: dict, rng: random.Random) -> tuple[str, dict]:
  """Fills ``{param}`` and ``{~pool}`` slots; returns (query, gold arguments)."""
  args: dict = {}

  def sub(m):
    filler, name = m.group(1), m.group(2)
    text, value = cs.pool_entry(rng.choice(pools[name if filler else slots[name]]))
    if not filler:
      args[name] = value
    return text

  query = cs.SLOT_RE.sub(sub, template)
  query = re.sub(r"\s+", " ", query).strip()
  return query, args


def synthesize_tool(tool: dict, pools: dict, n_pairs: int, seen_queries: set) -> list[dict]:
  """``n_pairs`` distinct (query, arguments, style, template) records for one tool."""
  rng = random.Random(_seed("pairs", tool["name"]))
  templates = tool["templates"]
  order = list(range(len(templates)))
  rng.shuffle(order)
  out = []
  k = 0
  while len(out) < n_pairs:
    for attempt in range(MAX_TRIES):
      t_idx = order[(k + attempt) % len(order)]
      tpl = templates[t_idx]
      style = tpl["style"]
      text = tpl["text"]
      if rng.random() < TYPO_RATE:
        text, style = add_typos(text, rng), "typo"
      query, args = fill(text, tool.get("slots", {}), pools, rng)
      if query.lower() not in seen_queries:
        break
    else:
      raise SystemExit(f"tool {tool['name']}: cannot draw {n_pairs} distinct queries; add "
                       "templates or pool values")
    seen_queries.add(query.lower())
    out.append({"query": query, "arguments": args, "style": style, "template": t_idx})
    k += 1
  return out


# ---- Release 1.1.0 rules (1.0.0 never goes through them: its files stay byte-identical) ----

DOUBLED_ARTICLE_RE = re.compile(r"\b(a|an|the|my|your|our|their)\s+(a|an|the|my|your|our|their)\b",
                                re.IGNORECASE)
TYPO_TRIES = 10


def load_paraphrase(version: str) -> dict:
  """The seeded paraphrase rules of a release (none for 1.0.0)."""
  path = sources_dir(version) / "paraphrase.json"
  if version == "1.0.0" or not path.exists():
    return {"substitutions": [], "openers": {}, "closers": {}}
  rules = json.loads(path.read_text(encoding="utf-8"))
  for r in rules.get("substitutions", []):
    # A rule written capitalised ("Post") rewrites only that form (an imperative opening a
    # sentence), never the noun inside one ("a LinkedIn post").
    pattern = r["from"] if r.get("regex") else re.escape(r["from"])
    flags = 0 if r["from"][:1].isupper() else re.IGNORECASE
    r["re"] = re.compile(r"(?<![\w{~'-])" + pattern + r"(?![\w}'-])", flags)
  return rules


_DOUBLED_WORD = re.compile(r"\b([A-Za-z]{2,}) \1\b", re.IGNORECASE)
_CONSONANT_SOUND = ("one", "once", "uni", "use", "usu", "uti", "ubi", "eu", "ur", "ufo")
_VOWEL_SOUND = ("hour", "honest", "heir")
# Numbers said with a vowel sound: eight..., eighty..., eight hundred..., eleven, eighteen
# (also as thousands: "18,000" is eighteen thousand); "180" and "1,100" start with "one".
_VOWEL_NUMBER = re.compile(r"8|1[18](?![\d])|1[18],\d{3}(?![\d])")


def fix_articles(text: str) -> str:
  """"a" before a vowel sound becomes "an" and back ("a Excel file", "an wake-up call"): a
  paraphrase or a slot value can change the word after an article. Acronyms keep theirs."""
  def sub(m):
    art, word = m.group(1), m.group(2)
    low = word.lower()
    vowel = (low[:1] in "aeio" and not low.startswith(_CONSONANT_SOUND)) or low.startswith(
        _VOWEL_SOUND)
    if word[:1].isupper() and word[1:2].isupper():  # URL, UPS, SQL: leave as written
      return m.group()
    if low[:1] == "u" and not low.startswith(_CONSONANT_SOUND):
      vowel = True
    want = ("an" if vowel else "a")
    want = want.capitalize() if art[0].isupper() else want
    return f"{want} {word}"
  text = re.sub(r"(?:(?<=^)|(?<=[\s(\"']))(a|an) ([A-Za-z][\w'-]*)", sub, text)
  text = re.sub(r"(?:(?<=^)|(?<=[.!?:] ))(A|An) ([A-Za-z][\w'-]*)", sub, text)
  # A number read with a vowel sound ("an 18 percent tip", "an 8-hour shift", "an 11:30 slot").
  return re.sub(r"(?:(?<=^)|(?<=[\s(\"']))(a|an|A|An) (\d[\d.,:]*)",
                lambda m: (("an" if _VOWEL_NUMBER.match(m.group(2)) else "a")
                           if m.group(1).islower() else
                           ("An" if _VOWEL_NUMBER.match(m.group(2)) else "A")) + " " + m.group(2),
                text)


def _match_case(old: str, new: str) -> str:
  """``new`` with the case of ``old``'s first letter (names and "I" keep theirs)."""
  if old[:1].isupper():
    return new if old.isupper() and len(old) > 1 else new[:1].upper() + new[1:]
  first = new.split()[0] if new.split() else ""
  if first[1:] != first[1:].lower() or first.split("'")[0] in ("I", "Uber", "Roomba", "Excel"):
    return new
  return new[:1].lower() + new[1:]


def paraphrase(template: str, style: str, rules: dict, rng: random.Random,
               tool: str = "") -> str:
  """Rewrites the words of ``template`` (never its slots) with the release's seeded rules:
  phrase substitutions (each applies with its probability, once per template), then an opener
  that fits the first word (an imperative, a question, or a sentence about the user), then a
  closer."""
  pieces = re.split(r"(\{~?\w+\})", template)
  for r in rules["substitutions"]:
    if (style in r.get("skip_styles", rules.get("skip_styles", ())) or tool in
        r.get("skip_tools", ()) or ("tools" in r and tool not in r["tools"])):
      continue
    hits = [i for i, piece in enumerate(pieces) if not piece.startswith("{") and
            r["re"].search(piece)]
    if hits and rng.random() < r.get("p", rules.get("p_substitution", 0.6)):
      i = hits[0]
      choice = rng.choice(r["to"])
      new = r["re"].sub(lambda m, c=choice: _match_case(m.group(), c), pieces[i], count=1)
      # A rewrite that doubles a word ("remote storage storage", "CI run run") is dropped.
      if len(_DOUBLED_WORD.findall(new)) <= len(_DOUBLED_WORD.findall(pieces[i])):
        pieces[i] = new
  text = "".join(pieces)
  openers = rules["openers"].get(style, {})
  first = re.match(r"[A-Za-z']+", text)
  word = first.group().lower() if first else ""
  kind = next((k for k in ("imperative", "question", "neutral")
               if word in rules.get(k + "_words", ())), None)
  if kind and openers.get(kind) and rng.random() < rules.get("p_opener", 0.3):
    opener = rng.choice(openers[kind])
    keep = word in rules.get("keep_case_words", ()) or opener.endswith(("?", "!", "."))
    text = opener + " " + (text if keep else text[0].lower() + text[1:])
    if kind == "imperative" and opener.lower().rstrip(",").split()[-1] == "you":
      # "Could you ..." asks: its own sentence (the first) ends with "?", not a later one.
      text = re.sub(r"[.!](?=\s|$)", "?", text, count=1)
  closers = rules["closers"].get(style, [])
  if closers and rng.random() < rules.get("p_closer", 0.15):
    text = text.rstrip()
    text += ("" if text[-1:] in ".?!" else ".") + " " + rng.choice(closers)
  return text


def _pool_values(ref: str, pools: dict) -> list:
  """The entries of a pool, or of one field of a joint pool (``joint_x.field``)."""
  if "." in ref:
    pool, field = ref.split(".", 1)
    return [e[field] for e in pools[pool]]
  return pools[ref]


def draw(template: str, slots: dict, pools: dict, rng: random.Random) -> list:
  """One entry per slot occurrence of ``template``, in order; slots that read the same joint
  pool (``joint_x.field``) share one drawn row of it, so their values agree."""
  rows: dict[str, int] = {}
  out = []
  for filler, name in cs.SLOT_RE.findall(template):
    ref = name if filler else slots[name]
    if "." in ref:
      pool, field = ref.split(".", 1)
      if pool not in rows:
        rows[pool] = rng.randrange(len(pools[pool]))
      out.append(pools[pool][rows[pool]][field])
    else:
      out.append(rng.choice(pools[ref]))
  return out


def render(template: str, entries: list) -> tuple[str, dict]:
  """Fills the slots of ``template`` with ``entries`` (from ``draw``): (query, gold arguments)."""
  args: dict = {}
  it = iter(entries)

  def sub(m):
    text, value = cs.pool_entry(next(it))
    if not m.group(1):
      args[m.group(2)] = value
    return text

  query = cs.SLOT_RE.sub(sub, template)
  return re.sub(r"\s+", " ", query).strip(), args


def synthesize_tool_v11(tool: dict, pools: dict, n_pairs: int, seen_queries: set,
                        rules: dict) -> list[dict]:
  """Release 1.1.0: ``n_pairs`` distinct records for one tool under the 1.1 rules."""
  rng = random.Random(_seed("pairs-1.1.0", tool["name"]))
  templates = tool["templates"]
  # Requests that name the goal, not the action, come up more often: an indirect template
  # enters the cycle ``indirect_weight`` times (a fractional part: that share of the tool's
  # indirect templates, seeded, enters once more).
  weight = rules.get("indirect_weight", 1)
  indirect = [i for i, t in enumerate(templates) if t["style"] == "indirect"]
  extra = rng.sample(indirect, round((weight - int(weight)) * len(indirect)))
  order = [i for i, t in enumerate(templates)
           for _ in range(int(weight) if t["style"] == "indirect" else 1)] + extra
  rng.shuffle(order)
  out = []
  k = 0
  while len(out) < n_pairs:
    for attempt in range(MAX_TRIES):
      t_idx = order[(k + attempt) % len(order)]
      style = templates[t_idx]["style"]
      text = paraphrase(templates[t_idx]["text"], style, rules, rng, tool["name"])
      typo_text = None
      if rng.random() < TYPO_RATE:
        for _ in range(TYPO_TRIES):
          candidate = add_typos(text, rng)
          if candidate != text:
            typo_text = candidate
            break
      entries = draw(text, {**tool.get("slots", {}), **templates[t_idx].get("slots", {})},
                     pools, rng)
      clean, args = render(text, entries)
      clean = fix_articles(clean)
      query = fix_articles(render(typo_text, entries)[0]) if typo_text else clean
      if (query.lower() not in seen_queries and not DOUBLED_ARTICLE_RE.search(query)
          and not DOUBLED_ARTICLE_RE.search(clean)):
        break
    else:
      raise SystemExit(f"tool {tool['name']}: cannot draw {n_pairs} distinct queries; add "
                       "templates or pool values")
    seen_queries.add(query.lower())
    out.append({"query": query, "arguments": args, "style": "typo" if typo_text else style,
                "template": t_idx, "template_text": text,
                "typo_of": clean if typo_text else None})
    k += 1
  return out


def load_release(version: str) -> dict:
  """``sources/<version>/release.json``: reference date and the test-tool subsets (1.1.0+)."""
  path = sources_dir(version) / "release.json"
  return {} if version == "1.0.0" or not path.exists() else json.loads(
      path.read_text(encoding="utf-8"))


def split_tools(domains: list[dict]) -> dict[str, str]:
  """Per domain: ~25% unseen (>= 5) test tools, ~10% validation, the rest train."""
  split = {}
  for d in domains:
    names = [t["name"] for t in d["tools"]]
    rng = random.Random(_seed("split", SPLIT_SEED, d["domain"]))
    n_test = max(MIN_TEST, round(TEST_FRACTION * len(names)))
    n_val = max(1, round(VAL_FRACTION * len(names)))
    # Draw until at least two sibling groups straddle train and test (the realistic hard case:
    # a new tool next to familiar ones) and no group is entirely unseen.
    for _ in range(1000):
      perm = rng.sample(names, len(names))
      test, val = set(perm[:n_test]), set(perm[n_test:n_test + n_val])
      groups: dict[str, set] = {}
      for t in d["tools"]:
        groups.setdefault(t["group"], set()).add(
            "test" if t["name"] in test else "validation" if t["name"] in val else "train")
      straddle = sum(1 for s in groups.values() if {"train", "test"} <= s)
      if straddle >= 2 and all("train" in s for s in groups.values()):
        break
    else:
      raise SystemExit(f"{d['domain']}: no split satisfies the sibling constraints")
    for n in names:
      split[n] = "test" if n in test else "validation" if n in val else "train"
  return split


def synthesize(version: str = DEFAULT_VERSION) -> tuple[list[dict], list[dict]]:
  domains, _ = load_sources(version)
  tools = [dict(t, domain=d["domain"]) for d in domains for t in d["tools"]]
  counts = allocate([t["weight"] for t in tools])
  split = split_tools(domains)
  pools_of = {d["domain"]: d["pools"] for d in domains}
  rules = load_paraphrase(version)
  release = load_release(version)
  tool_rows, qa_rows, seen = [], [], set()
  for index, (tool, n) in enumerate(zip(tools, counts)):
    tool_rows.append({"index": index, "name": tool["name"], "domain": tool["domain"],
                      "group": tool["group"], "description": tool["description"],
                      "parameters": tool["parameters"], "split": split[tool["name"]]})
    if version == "1.0.0":
      for k, rec in enumerate(synthesize_tool(tool, pools_of[tool["domain"]], n, seen)):
        qa_rows.append({"id": f"{tool['name']}-{k:03d}", "domain": tool["domain"],
                        "query": rec["query"], "tool": tool["name"], "tool_index": index,
                        "arguments": rec["arguments"], "style": rec["style"],
                        "template": rec["template"], "split": split[tool["name"]]})
      continue
    for k, rec in enumerate(synthesize_tool_v11(tool, pools_of[tool["domain"]], n, seen, rules)):
      qa_rows.append({"id": f"{tool['name']}-{k:03d}", "domain": tool["domain"],
                      "query": rec["query"], "tool": tool["name"], "tool_index": index,
                      "arguments": rec["arguments"], "style": rec["style"],
                      "template": rec["template"], "template_text": rec["template_text"],
                      "typo_of": rec["typo_of"], "reference_date": release["reference_date"],
                      "split": split[tool["name"]]})
  return tool_rows, qa_rows


def metadata(version: str, tools: list[dict]) -> dict | None:
  """``data/<version>/metadata.json`` (1.1.0+): reference date, date rules, test subsets."""
  release = load_release(version)
  if not release:
    return None
  split = {t["name"]: t["split"] for t in tools}
  pairs = release["antonym_or_variant_of_training_tool"]
  for test_tool, info in pairs.items():
    if split.get(test_tool) != "test" or split.get(info["training_tool"]) != "train":
      raise SystemExit(f"release.json: {test_tool} must be a test tool and "
                       f"{info['training_tool']} a training tool")
  rest = sorted(n for n, s in split.items() if s == "test" and n not in pairs)
  return {"version": version, "reference_date": release["reference_date"],
          "date_rules": dates.__doc__.split("\n\n", 1)[1].strip(),
          "test_subsets": {"antonym_or_variant": sorted(pairs), "other": rest},
          "antonym_or_variant_of_training_tool": pairs}


def dump_jsonl(rows: list[dict]) -> str:
  return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def release_files(version: str) -> dict[pathlib.Path, str]:
  """{path: text} of every released file of ``version``, as the sources produce it."""
  tools, qa = synthesize(version)
  out = data_dir(version)
  files = {out / "tools.jsonl": dump_jsonl(tools), out / "qa.jsonl": dump_jsonl(qa)}
  meta = metadata(version, tools)
  if meta is not None:
    files[out / "metadata.json"] = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
  return files


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--check", action="store_true",
                  help="fail if the committed JSONL differs from a fresh synthesis")
  ap.add_argument("--version", default="all", choices=("all",) + VERSIONS,
                  help="which release to synthesize or check (default: all)")
  args = ap.parse_args(argv)
  versions = VERSIONS if args.version == "all" else (args.version,)
  files = {}
  for v in versions:
    files.update(release_files(v))
  if args.check:
    stale = [str(p) for p, text in files.items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    if stale:
      print("stale (rerun synthesize.py): " + ", ".join(stale))
      return 1
    print("released files match the sources (" + ", ".join(versions) + ")")
    return 0
  for path, text in files.items():
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
  print(f"wrote {len(files)} files for {', '.join(versions)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
