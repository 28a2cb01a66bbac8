"""APIBench builder: card counts, dedup, records, parsing, bad input, reading without our code."""

import json

import pytest

from datasets_tfds import external_common as ec
from datasets_tfds import testing
from datasets_tfds.apibench import apibench_dataset_builder as ag

RAW = testing.raw_dir("gorilla_apibench")
pytestmark = testing.needs(RAW)

# The card's numbers (README.md): tools after merging pool entries by api_call, and queries.
N_TOOLS = {"huggingface": 895, "tensorflowhub": 80, "torchhub": 94}
N_QA = {"huggingface": 911, "tensorflowhub": 688, "torchhub": 186}
N_POOL_LINES = {"huggingface": 936, "tensorflowhub": 696, "torchhub": 94}
N_MATCHED_BY_NAME = 77


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return testing.build(tmp_path_factory, ag.Builder, RAW)


@pytest.fixture(scope="module")
def records(data_dir):
  return testing.records(data_dir, "apibench")


def _count(items, key):
  out = {}
  for x in items:
    out[x[key].decode()] = out.get(x[key].decode(), 0) + 1
  return out


def test_counts_match_the_card(data_dir, records):
  for config, split, want in (("qa", "test", N_QA), ("tools", "train", N_TOOLS)):
    builder = ag.Builder(config=config, data_dir=str(data_dir))
    assert {s: v.num_examples for s, v in builder.info.splits.items()} == {
        split: sum(want.values())}
  qa, tools = records
  assert _count(qa, "group") == N_QA and _count(tools, "group") == N_TOOLS
  assert sum(b"gold_matched_by_api_name" in list(ex["tags"]) for ex in qa) == N_MATCHED_BY_NAME
  meta = ec.read_metadata(data_dir, "apibench", "qa")
  assert meta["dropped"] == {}
  pools = meta["notes"]["pools"]
  assert {h: p["pool_lines"] for h, p in pools.items()} == N_POOL_LINES
  assert {h: p["merged_duplicates"] for h, p in pools.items()} == {
      h: N_POOL_LINES[h] - N_TOOLS[h] for h in N_TOOLS}


def test_records(records):
  qa, tools = records
  names = [t["name"] for t in tools]
  assert len(set(names)) == len(names)  # one tool per api_call
  assert [int(t["index"]) for t in tools] == list(range(len(tools)))
  first = tools[0]
  assert first["name"] == b"AutoModel.from_pretrained('YituTech/conv-bert-base')"
  assert first["description"].decode().startswith("A pre-trained ConvBERT model")
  assert b"Domain: Natural Language Processing Feature Extraction." in first["description"]
  ex = qa[0]
  assert ex["id"] == b"apibench-huggingface-0001" and ex["source_id"] == b"huggingface_eval.json:1"
  assert ex["query"].decode().startswith("Design a feature for a social media website")
  assert b"###" not in ex["query"]
  assert ex["tool"] == b"AutoModel.from_pretrained('princeton-nlp/unsup-simcse-roberta-base')"
  assert list(ex["candidates"]) == [] and ex["arguments"] == b"{}"
  for ex in qa:
    assert names[int(ex["tool_index"])] == ex["tool"]
    assert tools[int(ex["tool_index"])]["group"] == ex["group"]


def test_instruction_and_name_matching():
  assert ag.instruction("###Instruction: Find X.\n###Output: <<<api_call>>>") == "Find X."
  assert ag.instruction("### Instruction: Find Y.\n### Output: z") == "Find Y."
  assert ag.instruction("###Instruction: No output marker here.") == "No output marker here."
  assert ag.instruction("no instruction") == ""
  index = {"M.load('a')": 0, "M.load('a', x=1)": 1, "N('a')": 2}
  assert ag.match_by_name("M.load('a', x=1, y=2)", {"M.load('a')", "N('a')"}, index) == (
      "M.load('a')")
  assert ag.match_by_name("Q('a')", {"M.load('a')", "N('a')"}, index) is None
  assert ag.match_by_name("Q('a')", {"N('a')"}, index) == "N('a')"


def test_unparseable_lines_are_counted(tmp_path):
  paths = {name: RAW / name for name in ag.URLS}
  lines = (RAW / "torchhub_eval.json").read_text(encoding="utf-8").splitlines()
  lines[2] = lines[2][:50]  # a truncated JSON line
  lines[4] = json.dumps({"code": "no instruction", "api_data": {}})
  paths["torchhub_eval.json"] = tmp_path / "torchhub_eval.json"
  paths["torchhub_eval.json"].write_text("\n".join(lines) + "\n", encoding="utf-8")
  conv = ag.convert(paths)
  assert dict(conv.report.dropped) == {"eval line is not a JSON object": 1,
                                       "no instruction text in code": 1}
  assert conv.report.examples["eval line is not a JSON object"] == ["torchhub_eval.json:3"]
  assert len(conv.qa["test"]) == sum(N_QA.values()) - 2


def test_altered_raw_file_names_file_and_sha256(tmp_path):
  testing.check_altered_raw_file(ag.Builder, ag.URLS, RAW, tmp_path, "torchhub_api.jsonl", 100,
                                 ("tools",))


def test_reads_through_data_source_without_our_code(data_dir):
  out = ec.read_without_builder_code("apibench", data_dir)
  assert out["our_modules_imported"] == []
  assert out["qa"]["test"]["n"] == sum(N_QA.values())
  assert out["tools"]["train"]["n"] == sum(N_TOOLS.values())
  assert out["qa"]["test"]["head"][0]["group"] == "huggingface"
