"""ToolSelector on real agents' inputs: per-query tool lists (names clash across lists, not
inside one), chat requests, long texts (windows), texts outside the vocabulary, and the disk
cache (hit, corrupt entry, atomic writes)."""

import copy
import json
import os
import pathlib
import threading
import time
import warnings

import jax
import numpy as np
import pytest

from mta_jax import bilevel, embedding_cache, toolspec, windowing
from mta_jax.models import encoder as encoder_lib, tokenizer as tok_lib
from mta_jax.scorer import Scorer, ScorerConfig
from mta_jax.selector import SelectorConfig, ToolSelector

ROOT = pathlib.Path(__file__).resolve().parents[1]
OPENAI = json.loads((ROOT / "examples" / "toolbox" / "tools.json").read_text())
REQUESTS = ROOT / "examples" / "agent_requests" / "requests.jsonl"
LONG = ("The quarterly planning document describes budgets, hiring, travel and the schedule of "
        "every team meeting in detail. " * 30 + "Please convert 250 US dollars into Japanese yen.")


def _plain(i):
  return dict(OPENAI[i]["function"])


@pytest.fixture(scope="module")
def sel(text_encoder):
  return ToolSelector.pretrained(encoder=text_encoder).set_tools(OPENAI, warmup=False)


# ---------------------------------------------------------------------------- per-query tools

def test_per_query_lists_rank_like_their_own_toolbox_and_names_may_clash(sel, text_encoder):
  a = [_plain(i) for i in range(4)]
  b = [_plain(i) for i in range(4, 8)]
  b[1] = dict(b[1], name=a[0]["name"])  # one name, two different specs (lists a and b)
  queries = ["will it rain in Lisbon?", "book a flight to Porto", "is it sunny in Oslo?"]
  embedded = []
  inner = sel._embed_ids  # pylint: disable=protected-access

  def counting(ids):
    embedded.extend(ids)
    return inner(ids)

  sel._embed_ids = counting  # pylint: disable=protected-access
  try:
    got = sel.rank(queries, tools=[a, b, copy.deepcopy(a)], top_k=None)
  finally:
    del sel._embed_ids  # pylint: disable=protected-access
  # The 3 queries and each distinct document once (list a's twin is not embedded again).
  assert len(embedded) <= 3 + 8
  for q, tools, ranking in zip(queries, [a, b, a], got):
    alone = ToolSelector.pretrained(encoder=text_encoder).set_tools(tools, warmup=False)
    want = alone.rank(q, top_k=None)[0]
    assert [c.name for c in ranking] == [c.name for c in want]
    np.testing.assert_allclose([c.score for c in ranking], [c.score for c in want], atol=1e-5)
  # None = the toolbox of set_tools; candidates index each query's own list.
  mixed = sel.rank(queries[:2], tools=[None, b], candidates=[None, ["search_flights",
                                                                    a[0]["name"]]], top_k=3)
  assert [c.name for c in mixed[0]] == [c.name for c in sel.rank(queries[0], top_k=3)[0]]
  assert sorted(c.name for c in mixed[1]) == sorted(["search_flights", a[0]["name"]])


def test_two_specs_of_one_name_inside_one_list_is_an_error_naming_both(sel, tmp_path):
  a = [_plain(i) for i in range(4)]
  bad = a + [dict(_plain(5), name=a[1]["name"])]
  with pytest.raises(toolspec.InputError) as e:
    sel.rank(["x", "y"], tools=[a, bad])
  assert str(e.value) == ("query #1: tools: duplicate tool name 'convert_currency' (tools #1 and "
                          "#4): two different specs of one name; names must be unique within "
                          "one tool list")
  p = tmp_path / "q.jsonl"
  p.write_text(json.dumps({"query": "x", "tools": a}) + "\n" + json.dumps(
      {"query": "y", "tools": a + [a[1]]}) + "\n")
  with pytest.raises(toolspec.InputError, match=rf"^{p}:2: 'tools': duplicate tool name "
                     r"'convert_currency' \(tools #1 and #4\): the same spec twice"):
    toolspec.read_queries(p, None)
  p.write_text(json.dumps({"query": "x"}) + "\n")
  with pytest.raises(toolspec.InputError, match=rf"^{p}:1: no 'tools' in this line and no "):
    toolspec.read_queries(p, None)


def test_the_example_requests_file_reads(tmp_path):
  rows = toolspec.read_queries(REQUESTS, None)
  assert [r.id for r in rows] == ["r1", "r2", "r3", "r4", "r5"]
  assert rows[0].tools is rows[3].tools  # equal lists: one object, one toolbox
  assert rows[1].query == "Get us a table for four at Cantinho do Avillez at 9."
  weather = [t for r in rows for t in r.tools if t.name == "get_current_weather"]
  assert len({toolspec.spec_id(t) for t in weather}) == 2


# ---------------------------------------------------------------------------- chat

CHAT = [{"role": "system", "content": "You are a helpful travel assistant."},
        {"role": "user", "content": "We land in Porto at 7pm."},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": [{"type": "text", "text": "Book a table for four at 9."},
                                     {"type": "image_url", "image_url": {"url": "x"}}]}]


@pytest.mark.parametrize("how,text", [
    ("last_user", "Book a table for four at 9."),
    ("user_turns", "We land in Porto at 7pm.\nBook a table for four at 9."),
    ("all", "You are a helpful travel assistant.\nWe land in Porto at 7pm.\n"
            "Book a table for four at 9.")])
def test_chat_messages_become_the_chosen_text(how, text):
  assert toolspec.messages_text(CHAT, "q", how) == text


def test_chat_queries_rank_as_their_text_and_bad_messages_are_named(sel):
  got = sel.rank([{"messages": CHAT}, CHAT], query_from="user_turns", top_k=3)
  want = sel.rank("We land in Porto at 7pm.\nBook a table for four at 9.", top_k=3)[0]
  assert [c.name for c in got[0]] == [c.name for c in got[1]] == [c.name for c in want]
  with pytest.raises(toolspec.InputError, match=r"query #0: 'messages' has no user turn"):
    sel.rank({"messages": [{"role": "system", "content": "be nice"}]})
  with pytest.raises(toolspec.InputError, match=r"query_from must be one of .*did you mean "
                     "'user_turns'"):
    sel.rank({"messages": CHAT}, query_from="user_turn")
  with pytest.raises(toolspec.InputError, match=r"query #0: message #1: message without a "):
    sel.rank({"messages": [{"role": "user", "content": "hi"}, {"content": "x"}]})


# ---------------------------------------------------------------------------- long, foreign

def test_long_text_is_windowed_not_cut_and_said(text_encoder):
  # The dense zero-shot: its scores are the cosines computed here (the hybrid adds the BM25
  # term on top, the same for windowed texts: test_selector_hybrid.py).
  sel = ToolSelector.pretrained(encoder=text_encoder, lexical=False).set_tools(OPENAI,
                                                                               warmup=False)
  tok = text_encoder.tokenizer
  ids = tok.encode_full([LONG])[0]
  assert len(ids) > 2 * tok_lib.MAX_LENGTH
  wins = tok_lib.windows(ids, tok_lib.MAX_LENGTH, sel.cfg.window_overlap)
  batch = tok.pad(wins, tok_lib.MAX_LENGTH)
  emb = np.asarray(encoder_lib._embed_fn(text_encoder.graphdef, text_encoder.params,  # pylint: disable=protected-access
                                         batch.ids, batch.mask))
  want = windowing.pool(emb, sel.cfg.window_pool)
  docs = text_encoder.embed([t.document() for t in toolspec.parse_tools(OPENAI)])
  with pytest.warns(windowing.TextWarning, match=r"1 of 1 texts are longer than the encoder's "
                    r"256-token window .* mean-pooled \(longest \d+ tokens; first query #0"):
    sel.rank([LONG], top_k=None)
  got = sel.scores([LONG])[0]
  np.testing.assert_allclose(got, docs @ want, atol=1e-5)
  truncated = text_encoder.embed([LONG])[0] @ docs.T
  assert np.abs(got - truncated).max() > 1e-3  # the windows changed the ranking's scores
  # A long tool document: windowed too (pooled selector), its embedding is the windows' pool.
  tools = [dict(_plain(0), description=LONG), _plain(2)]
  with pytest.warns(windowing.TextWarning, match="tool #0 \\('get_weather_forecast'\\)"):
    s = ToolSelector.pretrained(encoder=text_encoder, lexical=False).set_tools(tools,
                                                                                warmup=False)
  doc_ids = tok.encode_full([toolspec.parse_tools(tools)[0].document()])[0]
  dwins = tok_lib.windows(doc_ids, tok_lib.MAX_LENGTH, 64)
  b = tok.pad(dwins, tok_lib.MAX_LENGTH)
  d = windowing.pool(np.asarray(encoder_lib._embed_fn(  # pylint: disable=protected-access
      text_encoder.graphdef, text_encoder.params, b.ids, b.mask)), "mean")
  q = text_encoder.embed(["convert dollars"])[0]
  np.testing.assert_allclose(s.scores(["convert dollars"])[0, 0], q @ d, atol=1e-5)


def test_foreign_text_warns_with_count_and_ids_and_strict_raises(sel):
  zh = "明天北京的天气怎么样？会下雨吗"
  ko = "내일 서울 날씨 어때요?"
  with pytest.warns(windowing.TextWarning) as rec:
    sel.rank(["will it rain tomorrow?", zh, ko, zh + "!"], top_k=1)
  (msg,) = [str(w.message) for w in rec]
  assert msg.startswith("3 of 4 texts are over 20% [UNK] or single-character word pieces, "
                        "first query #1 (93%), query #2 (94%), query #3 (")
  assert "the encoder's vocabulary does not cover this text's language" in msg
  with pytest.raises(toolspec.InputError, match=r"1 of 1 texts .* \(strict mode\)"):
    sel.rank([zh], strict=True)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # English text: no warning at all
    sel.rank(["convert 250 dollars to yen", "Wie wird das Wetter morgen in München?"])


def test_english_texts_are_not_flagged(text_encoder):
  from mta_jax import data  # pylint: disable=import-outside-toplevel
  ds = data.from_jsonl(ROOT / "datasets_tfds" / "mta_tools" / "data")
  texts = [t.document() for t in ds.tools] + [q.text for q in ds.queries[::20]]
  stats = windowing.TextStats(text_encoder.tokenizer).add_texts([str(i) for i in range(
      len(texts))], texts)
  assert stats.foreign == []


# ---------------------------------------------------------------------------- disk cache

def test_disk_cache_hit_corrupt_entry_and_atomic_writes(text_encoder, tmp_path, monkeypatch):
  first = ToolSelector.pretrained(encoder=text_encoder).use_cache(tmp_path)
  first.set_tools(OPENAI, warmup=False)
  entries = sorted((tmp_path / "emb").rglob("*"))
  entries = [e for e in entries if e.is_file()]
  assert len(entries) == len(OPENAI)
  want = first.scores(["will it rain in Lisbon?"])

  second = ToolSelector.pretrained(encoder=text_encoder).use_cache(tmp_path)
  monkeypatch.setattr(second, "_embed_ids", lambda ids: pytest.fail("cache miss"))
  second.set_tools(OPENAI, warmup=False)  # every document from the disk
  np.testing.assert_array_equal(second.scores(["will it rain in Lisbon?"]), want)

  # A partial entry (cut short) and an altered one: recomputed with a warning, never used.
  entries[0].write_bytes(entries[0].read_bytes()[:40])
  raw = bytearray(entries[1].read_bytes())
  raw[-1] ^= 0xFF
  entries[1].write_bytes(bytes(raw))
  third = ToolSelector.pretrained(encoder=text_encoder).use_cache(tmp_path)
  recomputed = []
  inner = third._embed_ids  # pylint: disable=protected-access
  monkeypatch.setattr(third, "_embed_ids", lambda ids: recomputed.extend(ids) or inner(ids))
  with pytest.warns(embedding_cache.CacheWarning, match="is corrupt: "):
    third.set_tools(OPENAI, warmup=False)
  assert len(recomputed) == 2
  np.testing.assert_allclose(third.scores(["will it rain in Lisbon?"]), want, atol=1e-6)
  cache = embedding_cache.DiskCache(tmp_path)
  assert cache.get_vectors(third._ns["emb"], [t.document() for t in  # pylint: disable=protected-access
                                              toolspec.parse_tools(OPENAI)], 384).keys()
  assert cache.corrupt == 0  # rewritten whole

  # A writer that dies before its rename leaves neither an entry nor a temporary file.
  def broken(*_):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(os, "replace", broken)
  with pytest.warns(embedding_cache.CacheWarning, match="cannot write cache entry"):
    cache.put_arrays("adapted", "ab" * 32, {"x": np.ones(3)})
  monkeypatch.undo()
  assert not (tmp_path / "adapted" / "ab").exists() or not any(
      (tmp_path / "adapted" / "ab").iterdir())


def test_concurrent_writers_leave_one_whole_entry(tmp_path):
  key = "cd" * 32
  stop = threading.Event()
  seen = []

  def write(v):
    c = embedding_cache.DiskCache(tmp_path)
    while not stop.is_set():
      c.put_arrays("adapted", key, {"x": np.full(20000, v, np.float32)})

  def read():
    # Until 200 reads have found an entry (a loaded machine may start the writers late), at
    # most 30 s.
    c = embedding_cache.DiskCache(tmp_path)
    deadline = time.monotonic() + 30
    while len(seen) < 200 and time.monotonic() < deadline:
      got = c.get_arrays("adapted", key)
      if got is not None:
        seen.append(float(got["x"][0]) if np.all(got["x"] == got["x"][0]) else None)
    assert c.corrupt == 0

  writers = [threading.Thread(target=write, args=(v,)) for v in (1.0, 2.0)]
  for w in writers:
    w.start()
  try:
    read()
  finally:
    stop.set()
    for w in writers:
      w.join()
  assert seen and set(seen) <= {1.0, 2.0}
  assert [p.name for p in (tmp_path / "adapted" / "cd").iterdir()] == [key]


def test_adapted_parameters_are_cached_for_large_toolboxes(text_encoder, tmp_path, monkeypatch):
  scfg = ScorerConfig(n_top=0, adapt="head")
  mcfg = bilevel.MetaConfig(inner_steps=2, inner_lr=0.05, learn_inner_lr="per_tensor")
  meta = bilevel.init_meta(Scorer(scfg, text_encoder.model), mcfg, jax.random.key(0))
  meta["params"]["head/w"] = meta["params"]["head/w"] + 0.05 * jax.random.normal(
      jax.random.key(1), meta["params"]["head/w"].shape)
  cfg = SelectorConfig(n_views=2, disk_min_tools=8)
  first = ToolSelector.from_meta(scfg, mcfg, meta, cfg, text_encoder).use_cache(tmp_path)
  want = first.set_tools(OPENAI, warmup=False).scores(["will it rain in Lisbon?"])
  assert len(list((tmp_path / "adapted").rglob("*"))) == 2  # folder + one entry
  second = ToolSelector.from_meta(scfg, mcfg, meta, cfg, text_encoder).use_cache(tmp_path)
  monkeypatch.setattr(second, "_adapted", lambda *a: pytest.fail("adapted again"))
  second.set_tools(OPENAI, warmup=False)
  np.testing.assert_allclose(second.scores(["will it rain in Lisbon?"]), want, atol=1e-6)
  # Another checkpoint (other parameters) is another key: adapted anew.
  meta2 = copy.deepcopy(meta)
  meta2["params"]["head/b"] = meta2["params"]["head/b"] + 0.1
  third = ToolSelector.from_meta(scfg, mcfg, meta2, cfg, text_encoder).use_cache(tmp_path)
  third.set_tools(OPENAI, warmup=False)
  assert len([p for p in (tmp_path / "adapted").rglob("*") if p.is_file()]) == 2


def test_per_query_lists_with_an_inner_loop_adapt_per_list(text_encoder):
  scfg = ScorerConfig(n_top=0, adapt="head")
  mcfg = bilevel.MetaConfig(inner_steps=2, inner_lr=0.05, learn_inner_lr="per_tensor")
  meta = bilevel.init_meta(Scorer(scfg, text_encoder.model), mcfg, jax.random.key(0))
  meta["params"]["head/w"] = meta["params"]["head/w"] + 0.05 * jax.random.normal(
      jax.random.key(1), meta["params"]["head/w"].shape)
  cfg = SelectorConfig(n_views=2)
  a, b = [_plain(i) for i in range(4)], [_plain(i) for i in range(3, 8)]
  queries = ["will it rain in Lisbon?", "book a flight to Porto"]
  sel = ToolSelector.from_meta(scfg, mcfg, meta, cfg, text_encoder)
  got = sel.rank(queries, tools=[a, b], top_k=None)
  for q, tools, ranking in zip(queries, [a, b], got):
    alone = ToolSelector.from_meta(scfg, mcfg, meta, cfg, text_encoder).set_tools(
        tools, warmup=False)
    want = alone.rank(q, top_k=None)[0]
    assert [c.name for c in ranking] == [c.name for c in want]
    np.testing.assert_allclose([c.score for c in ranking], [c.score for c in want], atol=1e-5)
  # Each list got its own adaptation: the shared tool scores differently in the two lists.
  shared = {c.name: c.score for c in sel.rank(queries[:1] * 2, tools=[a, b], top_k=None)[0]}
  other = {c.name: c.score for c in sel.rank(queries[:1] * 2, tools=[a, b], top_k=None)[1]}
  assert abs(shared[a[3]["name"]] - other[a[3]["name"]]) > 1e-4
