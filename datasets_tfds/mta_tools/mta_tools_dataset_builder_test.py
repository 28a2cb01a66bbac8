"""MTA-Tools: sources -> JSONL is deterministic and valid; the TFDS build has the right totals;
the validator rejects each kind of bad input; another process reads it with tfds.data_source."""

import json
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

from datasets_tfds.mta_tools import check_sources, synthesize, validate

HERE = pathlib.Path(__file__).resolve().parent


def test_released_jsonl_is_what_the_sources_produce():
  assert synthesize.main(["--check"]) == 0


def test_released_data_is_valid_with_the_promised_totals():
  stats = validate.validate()
  assert stats["tools"] == 155 and stats["pairs"] == 9377
  assert stats["min_pairs"] >= 40 and stats["min_phrasings"] >= 15
  assert stats["styles"]["indirect"] / stats["pairs"] >= 0.30


def test_split_is_by_tool_with_enough_unseen_tools():
  tools = [json.loads(l) for l in (HERE / "data" / "tools.jsonl").read_text().splitlines()]
  qa = [json.loads(l) for l in (HERE / "data" / "qa.jsonl").read_text().splitlines()]
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
