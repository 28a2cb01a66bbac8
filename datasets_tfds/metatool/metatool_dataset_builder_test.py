"""MetaTool builder: counts of the card, records, the split, bad input, reading without our code."""

import json

import pytest

from datasets_tfds import external_common as ec
from datasets_tfds import testing
from datasets_tfds.metatool import metatool_dataset_builder as mt

RAW = testing.raw_dir("metatool")
pytestmark = testing.needs(RAW)

# The card's numbers (README.md).
N_TOOLS = {"train": 129, "validation": 20, "test": 50}
N_QA = {"train": 14111, "validation": 1515, "test": 4988}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return testing.build(tmp_path_factory, mt.Builder, RAW)


def test_counts_match_the_card(data_dir):
  for config, want in (("qa", N_QA), ("tools", {"train": sum(N_TOOLS.values())})):
    assert testing.split_counts(mt.Builder, data_dir, config) == want
  assert sum(N_QA.values()) == 20614 and sum(N_TOOLS.values()) == 199
  meta = ec.read_metadata(data_dir, "metatool", "qa")
  assert meta["dropped"] == {}
  assert meta["notes"]["multi_tool_queries_not_converted"] == 497
  assert meta["notes"]["tagged_duplicate"] == 56 and meta["notes"]["tagged_multi_gold"] == 29


def test_records_and_split_by_tool(data_dir):
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  tools = tfds.data_source("metatool/tools", data_dir=str(data_dir), split="all")
  tools = [tools[i] for i in range(len(tools))]
  assert [int(t["index"]) for t in tools] == list(range(199))
  assert [t["split"] for t in tools] == sorted((t["split"] for t in tools), key=[
      b"train", b"validation", b"test"].index)  # train tools first, then validation, then test
  split_of = {t["name"].decode(): t["split"].decode() for t in tools}
  assert {s: sum(v == s for v in split_of.values()) for s in N_TOOLS} == N_TOOLS
  assert split_of == mt.tool_splits(split_of)  # the hash split, reproducible from names alone
  desc = {t["name"].decode(): t["description"].decode() for t in tools}
  raw = json.loads((RAW / "plugin_des.json").read_text())
  assert desc == {k: v.strip() for k, v in raw.items()}
  assert all(t["group"] == t["name"] and t["parameters"] == b"{}" for t in tools)

  names = [t["name"] for t in tools]
  qa = tfds.data_source("metatool/qa", data_dir=str(data_dir))
  for split, source in qa.items():
    for i in range(0, len(source), 997):  # a sample of every split
      ex = source[i]
      assert split_of[ex["tool"].decode()] == split
      assert int(ex["tool_index"]) == names.index(ex["tool"])
      assert ex["group"] == ex["tool"]
  # Row 0 of all_clean_data.csv, in its tool's split.
  row0 = next(qa[s][0] for s in qa if qa[s][0]["id"] == b"metatool-00000")
  assert row0["query"] == b"Can I find academic research papers on this topic?"
  assert row0["tool"] == b"ResearchHelper" and row0["source_id"] == b"all_clean_data.csv:2"
  assert list(row0["candidates"]) == [] and row0["arguments"] == b"{}"


def test_tool_split_is_deterministic_and_sized():
  names = [f"tool{i}" for i in range(199)]
  a, b = mt.tool_splits(names), mt.tool_splits(list(reversed(names)))
  assert a == b
  assert {s: sum(v == s for v in a.values()) for s in N_TOOLS} == N_TOOLS
  with pytest.raises(ValueError, match="expected 199 tools"):
    mt.tool_splits(names[:10])


def test_altered_raw_file_names_file_and_sha256(tmp_path):
  testing.check_altered_raw_file(mt.Builder, mt.URLS, RAW, tmp_path, "plugin_des.json", 10,
                                 ("tools",))


def test_missing_raw_file_without_network_names_file_and_sha256(tmp_path):
  class NoNetwork:
    manual_dir = tmp_path

    def download(self, url):
      raise ConnectionError(f"no network for {url}")

  (tmp_path / "plugin_des.json").write_bytes((RAW / "plugin_des.json").read_bytes())
  files = mt.Builder.raw_files()
  want = {r.name: r.sha256 for r in files}["all_clean_data.csv"]
  with pytest.raises(ec.RawFileError, match=rf"'all_clean_data\.csv' is not in manual_dir.*"
                     rf"Expected sha256 {want}"):
    ec.fetch_raw_files(NoNetwork(), files)


def test_downloaded_raw_file_is_checked(tmp_path):
  files = [r for r in mt.Builder.raw_files() if r.name == "plugin_des.json"]

  class Downloads:
    manual_dir = tmp_path / "empty"  # no manual files: everything is "downloaded"

    def __init__(self, payload):
      self.payload = payload

    def download(self, url):
      path = tmp_path / url.rsplit("/", 1)[-1]
      path.write_bytes(self.payload)
      return path

  good = (RAW / "plugin_des.json").read_bytes()
  got = ec.fetch_raw_files(Downloads(good), files)
  assert got["plugin_des.json"].read_bytes() == good
  with pytest.raises(ec.RawFileError, match=rf"downloaded.*expects sha256 {files[0].sha256}"):
    ec.fetch_raw_files(Downloads(good + b" "), files)


def test_unparseable_rows_are_counted(tmp_path):
  paths = {name: RAW / name for name in mt.URLS}
  csv_text = (RAW / "all_clean_data.csv").read_text(encoding="utf-8")
  paths["all_clean_data.csv"] = tmp_path / "all_clean_data.csv"
  paths["all_clean_data.csv"].write_text(
      csv_text + 'extra,ResearchHelper,surplus\n,ResearchHelper\nA query,NoSuchTool\n',
      encoding="utf-8")
  conv = mt.convert(paths)
  assert dict(conv.report.dropped) == {"malformed CSV row (extra fields)": 1, "empty query": 1,
                                       "gold tool has no description in plugin_des.json": 1}
  assert sum(len(v) for v in conv.qa.values()) == 20614


def test_reads_through_data_source_without_our_code(data_dir):
  out = ec.read_without_builder_code("metatool", data_dir)
  assert out["our_modules_imported"] == []
  assert {s: v["n"] for s, v in out["qa"].items()} == N_QA
  assert {s: v["n"] for s, v in out["tools"].items()} == {"train": sum(N_TOOLS.values())}
  ex = out["qa"]["test"]["head"][0]
  assert set(ex) == {"id", "query", "tool", "tool_index", "group", "arguments", "candidates",
                     "style", "source_id", "tags"}
  assert out["tools"]["train"]["head"][0]["index"] == 0
