"""API-Bank level-1 builder: card counts, records, parsing, bad input, reading without our code."""

import json

import pytest

from datasets_tfds import external_common as ec
from datasets_tfds import testing
from datasets_tfds.api_bank import api_bank_dataset_builder as ab

RAW = testing.raw_dir("api_bank")
pytestmark = testing.needs(RAW)

# The card's numbers (README.md).
N_TOOLS, N_QA, N_LOGIN = 49, 399, 82
GROUP_SIZES = {"schedule_management": 17, "information_query": 10, "health_management": 8,
               "account_management": 5, "smart_home": 4, "finance": 3, "travel": 1,
               "entertainment": 1}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return testing.build(tmp_path_factory, ab.Builder, RAW)


@pytest.fixture(scope="module")
def records(data_dir):
  return testing.records(data_dir, "api_bank")


def test_counts_match_the_card(data_dir, records):
  for config, want in (("qa", {"test": N_QA}), ("tools", {"train": N_TOOLS})):
    assert testing.split_counts(ab.Builder, data_dir, config) == want
  qa, tools = records
  assert sum(b"GetUserToken" in list(ex["tags"]) for ex in qa) == N_LOGIN
  assert sum(ex["tool"] == b"GetUserToken" for ex in qa) == N_LOGIN
  sizes = {}
  for t in tools:
    sizes[t["group"].decode()] = sizes.get(t["group"].decode(), 0) + 1
  assert sizes == GROUP_SIZES
  meta = ec.read_metadata(data_dir, "api_bank", "qa")
  assert meta["dropped"] == {}
  assert meta["notes"]["gold_arguments_read"] == {"python": 368, "repaired": 31}


def test_records(records):
  qa, tools = records
  by_name = {t["name"].decode(): t for t in tools}
  assert [int(t["index"]) for t in tools] == list(range(N_TOOLS))
  assert all(t["split"] == b"test" and t["description"] for t in tools)
  params = json.loads(by_name["QueryHealthData"]["parameters"])
  assert params["type"] == "object"
  assert set(params["properties"]) == {"user_id", "start_time", "end_time"}
  assert params["properties"]["user_id"]["type"] == "string"

  ex = qa[0]
  assert ex["id"] == b"api_bank-000" and ex["tool"] == b"ModifyRegistration"
  assert ex["query"].decode().startswith("Can you please modify my appointment")
  assert "AI:" not in ex["query"].decode() and "Sure, I can help" not in ex["query"].decode()
  assert [c.decode() for c in ex["candidates"]] == ["QueryHealthData", "CancelRegistration",
                                                    "ModifyRegistration"]
  assert json.loads(ex["arguments"]) == {"appointment_id": "34567890",
                                         "new_appointment_date": "2023-03-26",
                                         "new_appointment_doctor": "Dr. Lee"}
  assert ex["group"] == b"health_management" == by_name["ModifyRegistration"]["group"]
  for ex in qa:
    assert ex["tool"] in list(ex["candidates"])
    assert int(ex["tool_index"]) == int(by_name[ex["tool"].decode()]["index"])


def test_gold_parsing_and_repair():
  assert ab.parse_gold("API-Request: [Calculator(formula='(5+6)*3')]") == (
      "Calculator", {"formula": "(5+6)*3"}, "python")
  name, args, how = ab.parse_gold(
      "API-Request: [QueryMeeting(token='a9', attendees='['John Smith', 'Jane Doe']')]")
  assert (name, how) == ("QueryMeeting", "repaired")
  assert args == {"token": "a9", "attendees": ["John Smith", "Jane Doe"]}
  assert ab.user_turns("User: hi\nAI: yes?\nUser: book it\nplease\nAPI-Request: [X()]->ok\n"
                       "Generate API Request:\n") == "hi\nbook it\nplease"


def test_unparseable_records_are_counted(tmp_path):
  recs = json.loads((RAW / "level-1-api.json").read_text(encoding="utf-8"))
  recs[3]["instruction"] = "no candidate list here"
  recs[5]["expected_output"] = "I would call an API"
  del recs[8]["input"]
  path = tmp_path / "level-1-api.json"
  path.write_text(json.dumps(recs), encoding="utf-8")
  conv = ab.convert({"level-1-api.json": path, "all_apis.csv": RAW / "all_apis.csv"})
  assert dict(conv.report.dropped) == {"unparseable record (ParseError)": 2,
                                       "unparseable record (KeyError)": 1}
  assert conv.report.examples["unparseable record (KeyError)"] == ["api_bank-008"]
  assert len(conv.qa["test"]) == N_QA - 3


def test_altered_raw_file_names_file_and_sha256(tmp_path):
  testing.check_altered_raw_file(ab.Builder, ab.URLS, RAW, tmp_path, "level-1-api.json", -3,
                                 ("qa",))


def test_reads_through_data_source_without_our_code(data_dir):
  out = ec.read_without_builder_code("api_bank", data_dir)
  assert out["our_modules_imported"] == []
  assert out["qa"]["test"]["n"] == N_QA and out["tools"]["train"]["n"] == N_TOOLS
  assert out["qa"]["test"]["head"][0]["candidates"] == ["QueryHealthData", "CancelRegistration",
                                                        "ModifyRegistration"]
