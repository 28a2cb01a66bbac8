"""ToolAlpaca builder: card counts, records, parsing, bad input, reading without our code."""

import json

import pytest

from datasets_tfds import external_common as ec
from datasets_tfds import testing
from datasets_tfds.toolalpaca import toolalpaca_dataset_builder as ta

RAW = testing.raw_dir("toolalpaca")
pytestmark = testing.needs(RAW)

# The card's numbers (README.md).
N_TOOLS, N_QA, N_GROUPS = 94, 167, 21
N_REAL, N_SIMULATED = 105, 62
DROPPED = {"gold answer calls 2+ different functions (multi-step)": 42,
           "gold function not documented in the file (no description)": 5}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return testing.build(tmp_path_factory, ta.Builder, RAW)


@pytest.fixture(scope="module")
def records(data_dir):
  return testing.records(data_dir, "toolalpaca")


def test_counts_match_the_card(data_dir, records):
  for config, want in (("qa", {"test": N_QA}), ("tools", {"train": N_TOOLS})):
    assert testing.split_counts(ta.Builder, data_dir, config) == want
  qa, tools = records
  assert len({t["group"] for t in tools}) == N_GROUPS
  assert sum(b"real" in list(ex["tags"]) for ex in qa) == N_REAL
  assert sum(b"simulated" in list(ex["tags"]) for ex in qa) == N_SIMULATED
  meta = ec.read_metadata(data_dir, "toolalpaca", "qa")
  assert meta["dropped"] == DROPPED
  assert N_QA + sum(DROPPED.values()) == 114 + 100  # every instruction is accounted for
  assert N_QA + DROPPED["gold function not documented in the file (no description)"] == 172


def test_records(records):
  qa, tools = records
  by_name = {t["name"].decode(): t for t in tools}
  assert len(by_name) == N_TOOLS
  holidays = by_name["Nager.Date.PublicHolidayPublicHolidaysV3"]
  assert holidays["description"] == b"Get public holidays" and holidays["group"] == b"Nager.Date"
  params = json.loads(holidays["parameters"])
  assert params["required"] == ["year", "countryCode"]
  assert params["properties"]["year"]["type"] == "integer"
  # Its one function has no summary line: the API's own description stands in.
  assert by_name["airportsapi.AirportApi_getAirport"]["description"] == (
      b"Get name and website-URL for airports by ICAO code")
  assert all(t["description"] for t in tools)

  ex = qa[0]
  assert ex["id"] == b"toolalpaca-real-00-00"
  assert ex["query"] == b"Can you check if today is a public holiday in China?"
  assert ex["tool"] == b"Nager.Date.PublicHolidayIsTodayPublicHoliday"
  assert json.loads(ex["arguments"]) == {"countryCode": "CN"}
  assert len(ex["candidates"]) == 8 and ex["tool"] in list(ex["candidates"])
  for ex in qa:
    group = by_name[ex["tool"].decode()]["group"]
    assert ex["group"] == group
    assert sorted(ex["candidates"]) == sorted(n.encode() for n, t in by_name.items()
                                              if t["group"] == group)


def test_function_doc_parsing():
  summary, params = ta.parse_function_doc(
      'Get long weekends\nParameters: {"year": "Required. integer. ", "code": "string. ISO."}'
      "\nOutput: Success.\n - Format: text/plain")
  assert summary == "Get long weekends"
  assert params == {"type": "object", "required": ["year"],
                    "properties": {"year": {"type": "integer", "description": ""},
                                   "code": {"type": "string", "description": "ISO."}}}
  assert ta.parse_function_doc("just text") == ("just text", None)


def test_unparseable_records_are_counted(tmp_path):
  apis = json.loads((RAW / "eval_simulated.json").read_text(encoding="utf-8"))
  apis[0]["Golden_Answers"] = str(apis[0]["Golden_Answers"])[:-5]  # broken literal
  apis[1]["Golden_Answers"][0] = "[{'Action': 'x'"  # one broken answer
  path = tmp_path / "eval_simulated.json"
  path.write_text(json.dumps(apis), encoding="utf-8")
  conv = ta.convert({"eval_real.json": RAW / "eval_real.json", "eval_simulated.json": path})
  assert conv.report.dropped["API record does not parse (all its instructions)"] == 1
  assert conv.report.dropped["gold answer missing or unparseable"] == 1


def test_altered_raw_file_names_file_and_sha256(tmp_path):
  testing.check_altered_raw_file(ta.Builder, ta.URLS, RAW, tmp_path, "eval_real.json", 1000,
                                 ("qa",))


def test_reads_through_data_source_without_our_code(data_dir):
  out = ec.read_without_builder_code("toolalpaca", data_dir)
  assert out["our_modules_imported"] == []
  assert out["qa"]["test"]["n"] == N_QA and out["tools"]["train"]["n"] == N_TOOLS
  assert out["tools"]["train"]["head"][0]["name"] == "Nager.Date.CountryCountryInfo"


def test_card_tables(data_dir):
  from datasets_tfds import external_cards  # pylint: disable=import-outside-toplevel
  text = external_cards.card("toolalpaca", data_dir)
  assert "| test | 94 | 167 | 21 |" in text
  assert "| gold answer calls 2+ different functions (multi-step) | 42 |" in text
  assert "| both | 167 | " in text and "(96)" in text  # SD scores the 96 queries of 5+ APIs
