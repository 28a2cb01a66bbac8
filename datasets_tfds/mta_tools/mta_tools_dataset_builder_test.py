"""MTA-Tools: sources -> JSONL is deterministic and valid (releases 1.0.0 and 1.1.0); the TFDS
build has the right totals and versions; the validator rejects each kind of bad input; another
process reads each version with tfds.data_source."""

import collections
import json
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

from datasets_tfds.mta_tools import check_sources, synthesize, validate

HERE = pathlib.Path(__file__).resolve().parent


V11 = HERE / "data" / "1.1.0"


def test_released_jsonl_is_what_the_sources_produce():
  assert synthesize.main(["--check"]) == 0  # every release: 1.0.0 and 1.1.0


def test_release_1_0_0_is_frozen():
  """1.0.0 is what every result so far was computed on: its files never change."""
  import hashlib  # pylint: disable=import-outside-toplevel
  digest = {f: hashlib.sha256((HERE / "data" / f).read_bytes()).hexdigest()[:16]
            for f in ("tools.jsonl", "qa.jsonl")}
  assert digest == {"tools.jsonl": "cc1cf41561b33137", "qa.jsonl": "154c8fd8279542e1"}
  assert synthesize.DEFAULT_VERSION == "1.0.0" and synthesize.data_dir() == HERE / "data"


@pytest.mark.parametrize("data_dir", [HERE / "data", V11], ids=["1.0.0", "1.1.0"])
def test_released_data_is_valid_with_the_promised_totals(data_dir):
  stats = validate.validate(data_dir)
  assert stats["tools"] == 155 and stats["pairs"] == 9377
  assert stats["min_pairs"] >= 40 and stats["min_phrasings"] >= 15
  assert stats["styles"]["indirect"] / stats["pairs"] >= 0.30


def test_release_1_1_keeps_tools_split_and_pair_counts_of_1_0():
  def rows(d, f):
    return [json.loads(l) for l in (d / f).read_text().splitlines()]
  t0, t1 = rows(HERE / "data", "tools.jsonl"), rows(V11, "tools.jsonl")
  assert [(t["name"], t["domain"], t["group"], t["split"]) for t in t0] == [
      (t["name"], t["domain"], t["group"], t["split"]) for t in t1]
  count = lambda qa: sorted(collections.Counter(q["tool"] for q in qa).items())
  assert count(rows(HERE / "data", "qa.jsonl")) == count(rows(V11, "qa.jsonl"))
  meta = json.loads((V11 / "metadata.json").read_text())
  assert {q["reference_date"] for q in rows(V11, "qa.jsonl")} == {meta["reference_date"]}
  test_tools = {t["name"] for t in t1 if t["split"] == "test"}
  subsets = meta["test_subsets"]
  assert set(subsets["antonym_or_variant"]) | set(subsets["other"]) == test_tools
  assert not set(subsets["antonym_or_variant"]) & set(subsets["other"])


@pytest.mark.parametrize("data_dir", [HERE / "data", V11], ids=["1.0.0", "1.1.0"])
def test_split_is_by_tool_with_enough_unseen_tools(data_dir):
  tools = [json.loads(l) for l in (data_dir / "tools.jsonl").read_text().splitlines()]
  qa = [json.loads(l) for l in (data_dir / "qa.jsonl").read_text().splitlines()]
  split_of = {t["name"]: t["split"] for t in tools}
  assert all(q["split"] == split_of[q["tool"]] for q in qa)
  for domain in {t["domain"] for t in tools}:
    dt = [t for t in tools if t["domain"] == domain]
    assert sum(t["split"] == "test" for t in dt) >= 5, domain
    groups = {}
    for t in dt:
      groups.setdefault(t["group"], set()).add(t["split"])
    assert sum({"train", "test"} <= s for s in groups.values()) >= 2, domain


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
  """A copy of the released data to corrupt one way per test."""
  d = tmp_path_factory.mktemp("bad")
  return d


def _corrupt(bad_dir, fname, line_no, mutate):
  d = bad_dir / f"case{len(list(bad_dir.iterdir()))}"
  d.mkdir()
  for f in ("tools.jsonl", "qa.jsonl"):
    shutil.copy(HERE / "data" / f, d / f)
  lines = (d / fname).read_text().splitlines()
  row = json.loads(lines[line_no - 1])
  out = mutate(row)
  lines[line_no - 1] = out if isinstance(out, str) else json.dumps(out)
  (d / fname).write_text("\n".join(lines) + "\n")
  return d


def _first_qa_with(pred):
  for n, line in enumerate((HERE / "data" / "qa.jsonl").read_text().splitlines(), 1):
    if pred(json.loads(line)):
      return n
  raise AssertionError("no such record")


def _tool(name):
  for line in (HERE / "data" / "tools.jsonl").read_text().splitlines():
    t = json.loads(line)
    if t["name"] == name:
      return t
  raise KeyError(name)


def _enum_case():
  for n, line in enumerate((HERE / "data" / "qa.jsonl").read_text().splitlines(), 1):
    q = json.loads(line)
    props = _tool(q["tool"])["parameters"]["properties"]
    for k in q["arguments"]:
      if "enum" in props[k]:
        return n, k
  raise AssertionError("no enum argument")


def _required_case():
  for n, line in enumerate((HERE / "data" / "qa.jsonl").read_text().splitlines(), 1):
    q = json.loads(line)
    req = _tool(q["tool"])["parameters"].get("required", [])
    for k in req:
      v = q["arguments"].get(k)
      if isinstance(v, str) and len(v) >= 4 and v.lower() in q["query"].lower():
        return n, k
  raise AssertionError("no stated required argument")


def _set(row, **kw):
  row.update(kw)
  return row


def _args(row, fn):
  fn(row["arguments"])
  return row


def _cases():
  n_enum, k_enum = _enum_case()
  n_req, k_req = _required_case()
  n_typed = _first_qa_with(lambda q: any(isinstance(v, str) for v in q["arguments"].values()))
  return {
      "unknown gold tool": ("qa.jsonl", 5, lambda r: _set(r, tool="teleport_user"),
                            "unknown gold tool"),
      "argument not in schema": ("qa.jsonl", 7, lambda r: _args(r, lambda a: a.update(
          colour_scheme="dark")), "not a parameter"),
      "wrong type": ("qa.jsonl", n_typed, lambda r: _args(r, lambda a: a.update(
          {next(k for k, v in a.items() if isinstance(v, str)): 12345})), "is not of type"),
      "enum violation": ("qa.jsonl", n_enum, lambda r: _args(r, lambda a: a.update(
          {k_enum: "definitely-not-an-option"})), "is not in enum"),
      "missing stated required argument": ("qa.jsonl", n_req, lambda r: _args(
          r, lambda a: a.pop(k_req)), "required argument missing"),
      "duplicate tool name": ("tools.jsonl", 2, lambda r: _set(r, name=_tool_name(1)),
                              "duplicate tool name"),
      "duplicate query": ("qa.jsonl", 3, lambda r: _set(r, query=_qa(1)["query"]),
                          "duplicate of line 1"),
      "invalid json": ("qa.jsonl", 9, lambda r: '{"id": "broken", ', "invalid JSON"),
  }


def _tool_name(line):
  return json.loads((HERE / "data" / "tools.jsonl").read_text().splitlines()[line - 1])["name"]


def _qa(line):
  return json.loads((HERE / "data" / "qa.jsonl").read_text().splitlines()[line - 1])


@pytest.mark.parametrize("case", ["unknown gold tool", "argument not in schema", "wrong type",
                                  "enum violation", "missing stated required argument",
                                  "duplicate tool name", "duplicate query", "invalid json"])
def test_validator_rejects_bad_input_with_file_line_and_field(bad_dir, case):
  fname, line, mutate, message = _cases()[case]
  d = _corrupt(bad_dir, fname, line, mutate)
  with pytest.raises(validate.ValidationError) as err:
    validate.validate(d)
  hits = [p for p in err.value.problems if message in p]
  assert hits, err.value.problems[:5]
  assert any(f"{fname}:{line}:" in p for p in hits), hits


def _corrupt_1_1(bad_dir, pred, mutate):
  """A copy of release 1.1.0 with the first record matching ``pred`` mutated; its line."""
  d = bad_dir / f"case{len(list(bad_dir.iterdir()))}"
  d.mkdir()
  for f in ("tools.jsonl", "qa.jsonl", "metadata.json"):
    shutil.copy(V11 / f, d / f)
  lines = (d / "qa.jsonl").read_text().splitlines()
  n = next(i for i, l in enumerate(lines, 1) if pred(json.loads(l)))
  lines[n - 1] = json.dumps(mutate(json.loads(lines[n - 1])))
  (d / "qa.jsonl").write_text("\n".join(lines) + "\n")
  return d, n


def _date_arg(q):
  return next((k for k, v in q["arguments"].items() if isinstance(v, str) and len(v) == 10
               and v[4] == "-" and v[7] == "-"), None)


def _unstate_year(q):
  k = _date_arg(q)
  q["arguments"][k] = str(int(q["arguments"][k][:4]) + 1) + q["arguments"][k][4:]
  return q


_CASES_1_1 = {
    "required argument missing": (lambda q: q["tool"] == "convert_currency" and "amount" in
                                  q["arguments"] or q["tool"] == "schedule_parcel_pickup",
                                  lambda q: _args(q, lambda a: a.pop(
                                      "from_currency" if "from_currency" in a else "pickup_date")),
                                  "required argument missing"),
    "mixed paths": (lambda q: q["tool"] == "copy_path" and q["arguments"].get(
        "destination_path", "").startswith("~"), lambda q: _args(q, lambda a: a.update(
            source_path="C:\\Users\\mei\\notes.txt")), "mixes Windows and POSIX paths"),
    "impossible pace": (lambda q: {"distance_km", "duration_minutes"} <= set(q["arguments"]),
                        lambda q: _args(q, lambda a: a.update(duration_minutes=1)),
                        "is not plausible"),
    "date not derivable": (lambda q: _date_arg(q) is not None, _unstate_year,
                           "cannot be derived from the query"),
    "typo row without a typo": (lambda q: q["style"] == "typo",
                                lambda q: _set(q, query=q["typo_of"]),
                                "a 'typo' row without a typo"),
    "doubled article": (lambda q: " the " in q["query"] and q["style"] != "typo",
                        lambda q: _set(q, query=q["query"].replace(" the ", " the the ", 1)),
                        "doubled article"),
    "second reference date": (lambda q: True, lambda q: _set(q, reference_date="2026-01-01"),
                              "reference_date"),
}


@pytest.mark.parametrize("case", sorted(_CASES_1_1))
def test_validator_rejects_1_1_defects_with_file_line_and_field(bad_dir, case):
  pred, mutate, message = _CASES_1_1[case]
  d, line = _corrupt_1_1(bad_dir, pred, mutate)
  with pytest.raises(validate.ValidationError) as err:
    validate.validate(d)
  hits = [p for p in err.value.problems if message in p]
  assert hits, err.value.problems[:5]
  assert any(f"qa.jsonl:{line}:" in p for p in hits), hits


def _copy_1_1(bad_dir, mutate_all):
  d = bad_dir / f"case{len(list(bad_dir.iterdir()))}"
  d.mkdir()
  for f in ("tools.jsonl", "metadata.json"):
    shutil.copy(V11 / f, d / f)
  rows = [mutate_all(json.loads(l)) for l in (V11 / "qa.jsonl").read_text().splitlines()]
  (d / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  return d


def test_validator_enforces_the_met_dataset_targets_of_1_1(bad_dir):
  """Queries per realized template <= 1.5, distinct-3 >= 0.65 and BM25 top-1 in a domain <= 45%
  are enforced."""
  one_template = _copy_1_1(bad_dir, lambda q: _set(q, template_text=str(q["template"])))
  with pytest.raises(validate.ValidationError, match="queries per realized template"):
    validate.validate(one_template)
  def name_it(q):  # the tool's name in front of every query: a keyword shortcut
    name = q["tool"].replace("_", " ") + " " + q["tool"].replace("_", " ") + ": "
    return _set(q, query=name + q["query"], typo_of=q["typo_of"] and name + q["typo_of"])
  named = _copy_1_1(bad_dir, name_it)
  with pytest.raises(validate.ValidationError, match="BM25 top-1 among the domain's tools"):
    validate.validate(named)
  tail = " and please let me know as soon as it is done, thank you so much for the help"
  def pad(q):  # one long stock phrase after every query: the same trigrams over and over
    return _set(q, query=q["query"] + tail, typo_of=q["typo_of"] and q["typo_of"] + tail)
  with pytest.raises(validate.ValidationError, match="distinct-3"):
    validate.validate(_copy_1_1(bad_dir, pad))


def test_dates_resolve_against_the_reference_date():
  from datasets_tfds.mta_tools import dates  # pylint: disable=import-outside-toplevel
  ref = "2026-03-02"  # a Monday
  assert dates.resolve("remind me tomorrow", ref) == {"2026-03-03"}
  assert dates.resolve("this Friday", ref) == {"2026-03-06"}
  assert dates.resolve("next Monday", ref) == {"2026-03-09"}
  assert dates.resolve("last Saturday", ref) == {"2026-02-28"}
  assert dates.resolve("back on January 6", ref) == {"2027-01-06"}
  assert dates.resolve("mail since January 5", ref, past=True) == {"2026-01-05"}
  assert dates.resolve("at the end of the month", ref) == {"2026-03-31"}
  assert dates.resolve("on 2026-12-05", None) == {"2026-12-05"}
  assert dates.resolve("on January 14", None) == set()  # no reference date, no year: unknown


def test_validator_rejects_wrong_totals(bad_dir):
  d = bad_dir / "short"
  d.mkdir()
  shutil.copy(HERE / "data" / "tools.jsonl", d / "tools.jsonl")
  lines = (HERE / "data" / "qa.jsonl").read_text().splitlines()
  (d / "qa.jsonl").write_text("\n".join(lines[:-1]) + "\n")
  with pytest.raises(validate.ValidationError, match="9376 pairs, expected 9377"):
    validate.validate(d)


def test_source_checker_reports_file_line_and_field(tmp_path):
  src = json.loads((HERE / "sources" / "iot.json").read_text())
  src["tools"][1]["templates"][0]["style"] = "poetic"
  src["tools"][2]["slots"]["nonexistent_param"] = "room"
  path = tmp_path / "iot.json"
  path.write_text(json.dumps(src, indent=1))
  problems = check_sources.check_domain(path, check_sources.load_common(), "IoT", 22)
  text = "\n".join(map(str, problems))
  assert "templates[0].style: style must be one of" in text
  assert "slots.nonexistent_param: slot names a parameter the schema lacks" in text
  assert all(p.line > 0 for p in problems)


def test_source_checker_of_1_1_wants_every_required_parameter_stated(tmp_path):
  """Release 1.1.0 promises valid gold calls, so a template must state each required parameter
  (1.0.0's sources, frozen with 11 invalid calls, are not held to it)."""
  src = json.loads((HERE / "sources" / "1.1.0" / "edu.json").read_text())
  tool = next(t for t in src["tools"] if t["name"] == "create_flashcard_deck")
  tool["templates"][0]["text"] = "Make me a new stack of cards to study."
  path = tmp_path / "edu.json"
  path.write_text(json.dumps(src, indent=1))
  common = check_sources.load_common(HERE / "sources" / "1.1.0")
  problems = check_sources.check_domain(path, common, "Edu", 21, states_required=True)
  assert [p.message for p in problems] == ["states no value for the required deck_name"]
  assert problems[0].line > 0
  assert not check_sources.check_domain(path, common, "Edu", 21)
  assert not check_sources.check_all(sources_dir=HERE / "sources" / "1.1.0")
  assert not check_sources.check_all()  # 1.0.0


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  from datasets_tfds import build  # pylint: disable=import-outside-toplevel
  data_dir = tmp_path_factory.mktemp("tfds")
  build.build("mta_tools", str(data_dir))
  return data_dir


def test_tfds_build_totals(built):
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  qa = tfds.builder("mta_tools/qa", data_dir=str(built))
  tools = tfds.builder("mta_tools/tools", data_dir=str(built))
  assert sum(s.num_examples for s in qa.info.splits.values()) == 9377
  assert tools.info.splits["train"].num_examples == 155
  assert qa.info.version == "1.0.0"


@pytest.fixture(scope="module")
def built_1_1(tmp_path_factory):
  from datasets_tfds.mta_tools import mta_tools_dataset_builder as mb  # pylint: disable=import-outside-toplevel
  data_dir = tmp_path_factory.mktemp("tfds11")
  for config in ("qa", "tools"):
    mb.Builder(config=config, data_dir=str(data_dir), file_format="array_record",
               version="1.1.0").download_and_prepare()
  return data_dir


def test_default_build_is_1_0_0_and_1_1_0_is_built_on_request(built, built_1_1):
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  from datasets_tfds.mta_tools import mta_tools_dataset_builder as mb  # pylint: disable=import-outside-toplevel
  assert str(mb.Builder(config="qa", data_dir=str(built)).info.version) == "1.0.0"
  assert not (built / "mta_tools" / "qa" / "1.1.0").exists()
  qa = tfds.builder("mta_tools/qa:1.1.0", data_dir=str(built_1_1))
  assert str(qa.info.version) == "1.1.0" and "1.1.0" in qa.info.release_notes
  assert sum(s.num_examples for s in qa.info.splits.values()) == 9377
  meta = json.loads((V11 / "metadata.json").read_text())
  assert dict(qa.info.metadata)["reference_date"] == meta["reference_date"]


def test_other_process_reads_1_1_0_and_1_0_0_without_our_code(built, built_1_1):
  code = textwrap.dedent(f"""
      import sys, json
      import tensorflow_datasets as tfds
      out = {{}}
      for d, spec in (({str(built_1_1)!r}, "mta_tools/qa:1.1.0"), ({str(built)!r}, "mta_tools/qa:1.0.0")):
        qa = tfds.data_source(spec, data_dir=d)
        tools = tfds.data_source(spec.replace("qa", "tools"), data_dir=d)
        ex = qa["test"][0]
        out[spec] = {{"n": sum(len(qa[s]) for s in ("train", "validation", "test")),
                      "tools": len(tools["train"]), "tags": [t.decode() for t in ex["tags"]]}}
      assert not any(m.startswith("datasets_tfds") for m in sys.modules), "imported our code"
      print(json.dumps(out))
  """)
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd="/", timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  res = json.loads(out.stdout.strip().splitlines()[-1])
  for spec in ("mta_tools/qa:1.1.0", "mta_tools/qa:1.0.0"):
    assert res[spec]["n"] == 9377 and res[spec]["tools"] == 155
  tags = res["mta_tools/qa:1.1.0"]["tags"]
  assert any(t.startswith("reference_date:") for t in tags)
  assert any(t.startswith("test_subset:") for t in tags)
  assert not any(t.startswith("reference_date:") for t in res["mta_tools/qa:1.0.0"]["tags"])


def test_jsonl_and_tfds_loads_of_1_1_0_give_the_same_pairs(built_1_1):
  from mta_jax import data  # pylint: disable=import-outside-toplevel
  a, b = data.from_jsonl(V11), data.load("mta_tools", str(built_1_1), version="1.1.0")
  assert a.documents(4)[0] == b.documents(4)[0]
  assert sorted((q.id, q.text, q.tool, q.split) for q in a.queries) == sorted(
      (q.id, q.text, q.tool, q.split) for q in b.queries)


def test_jsonl_and_tfds_loads_give_the_same_tools_documents_and_pairs(built):
  """The card and the LLM rows read the JSONL, the encoder rows the TFDS build: same texts."""
  from mta_jax import data  # pylint: disable=import-outside-toplevel
  a, b = data.from_jsonl(HERE / "data"), data.load("mta_tools", str(built))
  assert a.documents(4)[0] == b.documents(4)[0]
  assert [(t.name, t.group, t.split) for t in a.tools] == [(t.name, t.group, t.split)
                                                          for t in b.tools]
  # The TFDS build stores queries in its own order: compare them as a set of pairs.
  assert sorted((q.id, q.text, q.tool, q.split) for q in a.queries) == sorted(
      (q.id, q.text, q.tool, q.split) for q in b.queries)


def test_other_process_reads_with_data_source_without_our_code(built):
  code = textwrap.dedent(f"""
      import sys, json
      import tensorflow_datasets as tfds
      qa = tfds.data_source("mta_tools/qa", data_dir={str(built)!r})
      tools = tfds.data_source("mta_tools/tools", data_dir={str(built)!r})
      assert not any(m.startswith("datasets_tfds") for m in sys.modules), "imported our code"
      n = sum(len(qa[s]) for s in ("train", "validation", "test"))
      ex = qa["test"][0]
      domains = {{t["group"].decode() for t in tools["train"]}}
      print(json.dumps({{"n": n, "tools": len(tools["train"]), "domains": len(domains),
                        "keys": sorted(ex)}}))
  """)
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd="/", timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  res = json.loads(out.stdout.strip().splitlines()[-1])
  assert res["n"] == 9377 and res["tools"] == 155 and res["domains"] == 7
  assert {"query", "tool", "tool_index", "arguments", "style", "group"} <= set(res["keys"])


def test_builder_on_dummy_data(tmp_path, monkeypatch):
  from datasets_tfds.mta_tools import mta_tools_dataset_builder as mb  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(mb, "DATA_DIR", HERE / "dummy_data")
  b = mb.Builder(config="qa", data_dir=str(tmp_path), file_format="array_record")
  b.download_and_prepare()
  assert {k: v.num_examples for k, v in b.info.splits.items()} == {
      "train": 2, "validation": 2, "test": 2}
  src = b.as_data_source()
  ex = src["test"][0]
  assert json.loads(ex["arguments"]) == json.loads(
      (HERE / "dummy_data" / "qa.jsonl").read_text().splitlines()[4])["arguments"]
  assert ex["tool_index"] == 2 and any(t.startswith(b"sibling:") for t in ex["tags"])


def test_card_tables_are_what_the_committed_script_prints():
  from datasets_tfds.mta_tools import card  # pylint: disable=import-outside-toplevel
  from mta_jax import data  # pylint: disable=import-outside-toplevel
  ds = data.from_jsonl(HERE / "data")
  readme = (HERE / "README.md").read_text()
  for table in (card.counts_table(ds), card.style_table(ds), card.length_table(ds)):
    assert table in readme


def test_card_compare_table_of_1_0_and_1_1_is_in_the_readme():
  """Issue 21's table (every row but the encoder's) and the read-sample appendix are what
  card.py prints; the read sample's verdicts name only sampled queries."""
  from datasets_tfds.mta_tools import card  # pylint: disable=import-outside-toplevel
  readme = (HERE / "README.md").read_text()
  table = card.compare_table(card.quality("1.0.0"), card.quality("1.1.0"))
  for row in table.splitlines():
    assert row in readme, row
  assert card.appendix("1.1.0") in readme
  verdicts = card.read_verdicts("1.1.0")
  sampled = {q["id"] for q in card.read_sample("1.1.0", card._rows("1.1.0")[1])}  # pylint: disable=protected-access
  assert set(verdicts["broken"]) <= sampled and len(sampled) == 280


def test_card_difficulty_rows_are_the_evaluators_random_and_bm25():
  """The card's difficulty table comes from run_eval (no encoder here: random and BM25 rows)."""
  from datasets_tfds.mta_tools import card  # pylint: disable=import-outside-toplevel
  from mta_jax import data  # pylint: disable=import-outside-toplevel
  table = card.difficulty_table(card.difficulty(data.from_jsonl(HERE / "data"), False))
  readme = (HERE / "README.md").read_text()
  rows = table.splitlines()[2:]
  assert [r.split(" |")[0] for r in rows] == ["| random", "| BM25"]
  for row in rows:
    assert row in readme


def test_tfds_load_with_tensorflow_from_a_tfrecord_build(tmp_path):
  """The tf.data path: needs TensorFlow (`make tf`), which the default set-up leaves out."""
  pytest.importorskip("tensorflow", reason="TensorFlow is not installed (optional, `make tf`); "
                      "the array_record path is tested above without it")
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  from datasets_tfds.mta_tools import mta_tools_dataset_builder as mb  # pylint: disable=import-outside-toplevel
  b = mb.Builder(config="qa", data_dir=str(tmp_path), file_format="tfrecord")
  b.download_and_prepare()
  ds = tfds.load("mta_tools/qa", split="test", data_dir=str(tmp_path))
  n = 0
  for ex in ds.take(3):
    assert ex["query"].numpy() and ex["tool"].numpy()
  n = sum(1 for _ in ds)
  assert n == b.info.splits["test"].num_examples == 2446


def test_build_command_builds_a_named_version_and_names_an_unknown_one(tmp_path):
  root = HERE.parents[1]
  run = lambda spec: subprocess.run(
      [sys.executable, "-m", "datasets_tfds.build", f"--data_dir={tmp_path}", f"--datasets={spec}"],
      cwd=root, capture_output=True, text=True, timeout=300, check=False)
  ok = run("mta_tools:1.1.0")
  assert ok.returncode == 0, ok.stderr[-2000:]
  assert "mta_tools/qa/1.1.0: train=6095, validation=836, test=2446" in ok.stdout
  assert not (tmp_path / "mta_tools" / "qa" / "1.0.0").exists()
  bad = run("mta_tools:9.9.9")
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines()[-1].startswith(
      "build: error: mta_tools: Dataset mta_tools cannot be loaded at version 9.9.9")


def test_unpinned_load_reads_the_default_release_when_both_are_built(built, built_1_1, tmp_path):
  """A data dir with 1.0.0 and 1.1.0: TFDS alone reads the newest, so ``data.load`` pins the
  default (1.0.0) unless a version is asked for. In a fresh process that has not imported the
  builder (as meta_train and evaluate are), where TFDS's own choice would be 1.1.0."""
  both = tmp_path / "both"
  for root in (built, built_1_1):
    shutil.copytree(root / "mta_tools", both / "mta_tools", dirs_exist_ok=True)
  code = textwrap.dedent(f"""
      import sys, json
      from mta_jax import data
      got = {{v: data.load("mta_tools", {str(both)!r}, version=v).version for v in (None, "1.1.0")}}
      assert not any(m.startswith("datasets_tfds") for m in sys.modules), "imported the builder"
      print(json.dumps(got))
  """)
  root = pathlib.Path(__file__).resolve().parents[2]
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert json.loads(out.stdout.strip().splitlines()[-1]) == {"null": "1.0.0", "1.1.0": "1.1.0"}


def test_default_versions_agree_with_the_builders_and_ambiguity_is_an_error(tmp_path):
  from mta_jax import data  # pylint: disable=import-outside-toplevel
  from datasets_tfds.mta_tools import mta_tools_dataset_builder as mb  # pylint: disable=import-outside-toplevel
  assert data.DEFAULT_VERSIONS["mta_tools"] == str(mb.Builder.VERSION)
  def built(*versions):
    root = tmp_path / "_".join(versions)
    for v in versions:
      (root / "mta_tools" / "tools" / v).mkdir(parents=True)
    return root
  assert data.default_version("mta_tools", built("1.0.0", "1.1.0")) == "1.0.0"
  assert data.default_version("mta_tools", built("1.1.0")) is None  # the one built: TFDS's pick
  with pytest.raises(data.DatasetNotFoundError, match="versions 1.1.0, 1.2.0 are built"):
    data.default_version("mta_tools", built("1.1.0", "1.2.0"))
