"""ToolSelector: the three tool formats, zero-shot = cosine of TextEncoder.embed, adaptation =
``bilevel.make_predict`` on the same episode, per-toolbox caching, candidates, bad input, and
loading a real Orbax checkpoint written by ``mta_jax.checkpointing``."""

import copy
import importlib.util
import json
import pathlib

import jax
import numpy as np
import pytest

from mta_jax import bilevel, checkpointing, toolspec
from mta_jax.models import bucket_for
from mta_jax.selector import Choice, SelectorConfig, ToolSelector
from mta_jax.scorer import Scorer, ScorerConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOLBOX = ROOT / "examples" / "toolbox"
OPENAI = json.loads((TOOLBOX / "tools.json").read_text())
QUERIES = [json.loads(l) for l in (TOOLBOX / "queries.jsonl").read_text().splitlines() if l]
SUPPORT = [json.loads(l) for l in (TOOLBOX / "support.jsonl").read_text().splitlines() if l]
NAMES = [t["function"]["name"] for t in OPENAI]
TEXTS = [q["query"] for q in QUERIES] + [
    "I would like to know whether the afternoon flight to Porto on the 14th still has two seats "
    "in economy, and what it costs compared with the train"]  # a longer bucket than the rest


def _plain():
  return [dict(t["function"]) for t in OPENAI]


def _mcp():
  return {"tools": [{"name": f["name"], "description": f["description"],
                     "inputSchema": f["parameters"]} for f in _plain()]}


# ---------------------------------------------------------------------------- formats

@pytest.mark.parametrize("spec", [
    OPENAI, _plain(), _mcp(), {"jsonrpc": "2.0", "id": 1, "result": _mcp()},
    OPENAI[:4] + _plain()[4:]], ids=["openai", "plain", "mcp", "mcp-jsonrpc", "mixed"])
def test_every_format_gives_the_same_tools(spec):
  tools = toolspec.parse_tools(spec)
  assert [t.name for t in tools] == NAMES
  assert tools[4].parameters["properties"]["origin"]["type"] == "string"
  # The same text a training tool gets: name, description and parameter descriptions.
  doc = tools[0].document()
  assert doc.startswith("get weather forecast: Returns the weather") and "city (City name" in doc


@pytest.mark.parametrize("mutate,message", [
    (lambda s: s[2]["function"].pop("name"), "tool #2 has no 'name'"),
    (lambda s: s[3]["function"].update(description="  "), "tool #3 ('create_calendar_event') "
     "has no 'description'"),
    (lambda s: s[5]["function"].update(name="send_email"), "duplicate tool name 'send_email' "
     "(tools #2 and #5)"),
    (lambda s: s[1]["function"].update(parameters=[1]), "'parameters' must be a JSON-schema"),
    (lambda s: s[1]["function"]["parameters"]["properties"].update(amount="number"),
     "parameter 'amount' must be a JSON-schema object"),
    (lambda s: s.__delitem__(slice(1, None)), "1 tool(s) given; at least 2"),
    (lambda s: s.append(7), "tool #8: a tool must be a JSON object"),
])
def test_bad_tool_specs_name_the_tool(mutate, message):
  spec = copy.deepcopy(OPENAI)
  mutate(spec)
  with pytest.raises(toolspec.InputError) as e:
    toolspec.parse_tools(spec, "my_tools.json")
  assert str(e.value).startswith("my_tools.json: ") and message in str(e.value)


# ---------------------------------------------------------------------------- zero-shot

@pytest.fixture(scope="module")
def zero_shot(text_encoder):
  """The dense zero-shot encoder (``lexical=False``; the default adds the BM25 term, see
  ``test_selector_hybrid.py``)."""
  return ToolSelector.pretrained(encoder=text_encoder, lexical=False).set_tools(OPENAI)


def test_zero_shot_ranks_by_cosine_of_text_encoder_embeddings(zero_shot, text_encoder):
  docs = [t.document() for t in toolspec.parse_tools(OPENAI)]
  ref = text_encoder.embed(TEXTS) @ text_encoder.embed(docs).T
  np.testing.assert_allclose(zero_shot.scores(TEXTS), ref, atol=1e-5)
  for row, ranking in zip(ref, zero_shot.rank(TEXTS, top_k=None)):
    assert sorted(c.name for c in ranking) == sorted(NAMES)
    ref_scores = [row[NAMES.index(c.name)] for c in ranking]
    # Best first, in the reference's order (gaps between tools here are >> 1e-5).
    assert all(a >= b - 1e-6 for a, b in zip(ref_scores, ref_scores[1:]))
    assert ranking[0].name == NAMES[int(np.argmax(row))]
  # Sanity of the example toolbox itself: zero-shot gets most of the obvious queries right.
  top1 = [r[0].name for r in zero_shot.rank([q["query"] for q in QUERIES[:7]])]
  assert sum(t == n for t, n in zip(top1, NAMES[:7])) >= 6


def test_candidates_top_k_and_single_query(zero_shot):
  full = zero_shot.scores(["put on some Miles Davis"])[0]
  (r,) = zero_shot.rank("put on some Miles Davis", candidates=["play_music", "send_email"],
                        top_k=5)
  assert [c.name for c in r] == sorted(["play_music", "send_email"],
                                       key=lambda n: -full[NAMES.index(n)])
  assert isinstance(r[0], Choice) and r[0].score == pytest.approx(full[NAMES.index(r[0].name)])
  per_query = zero_shot.rank(TEXTS[:3], candidates=[None, ["set_timer", "play_music"], None],
                             top_k=3)
  assert [len(r) for r in per_query] == [3, 2, 3]
  alone = zero_shot.rank(TEXTS[0], top_k=3)[0]  # batch of 1 vs 4: float noise only
  assert [c.name for c in per_query[0]] == [c.name for c in alone]
  np.testing.assert_allclose([c.score for c in per_query[0]], [c.score for c in alone], atol=1e-6)


@pytest.mark.parametrize("call,message", [
    (lambda s: s.rank(["hi"], candidates=["play_music", "play_musik"]),
     "unknown tool 'play_musik' in candidates (did you mean 'play_music'?)"),
    (lambda s: s.rank(["hi"], candidates=["play_music"]), "1 candidate(s); at least 2"),
    (lambda s: s.rank(["hi", "   "]), "query #1: empty query"),
    (lambda s: s.rank(["hi"], top_k=0), "top_k must be a positive integer"),
    (lambda s: s.rank(["a", "b"], candidates=[["set_timer", "play_music"]]),
     "candidates has 1 entries for 2 queries"),
    (lambda s: s.adapt([{"query": "hi", "tool": "sent_email"}]),
     "example #0: unknown tool 'sent_email' in 'tool' (did you mean 'send_email'?)"),
    (lambda s: s.adapt([("", "send_email")]), "example #0: empty query"),
])
def test_bad_calls_raise_one_clear_error(zero_shot, call, message):
  with pytest.raises(toolspec.InputError) as e:
    call(zero_shot)
  assert message in str(e.value)


def test_rank_before_set_tools_is_an_error(text_encoder):
  with pytest.raises(toolspec.InputError, match="call set_tools"):
    ToolSelector.pretrained(encoder=text_encoder).rank(["hi"])


def test_zero_shot_with_examples_uses_prototypes(text_encoder):
  sel = ToolSelector.pretrained(encoder=text_encoder, lexical=False).set_tools(OPENAI,
                                                                               warmup=False)
  sel.adapt(SUPPORT)
  docs = text_encoder.embed([t.document() for t in toolspec.parse_tools(OPENAI)])
  ex = text_encoder.embed([s["query"] for s in SUPPORT])
  protos = docs.copy()
  for s, e in zip(SUPPORT, ex):
    protos[NAMES.index(s["tool"])] += e
  protos /= np.linalg.norm(protos, axis=1, keepdims=True)
  np.testing.assert_allclose(sel.scores(TEXTS), text_encoder.embed(TEXTS) @ protos.T, atol=1e-5)
  sel.adapt([])  # back to documentation only = plain cosine
  np.testing.assert_allclose(sel.scores(TEXTS[:2]),
                             text_encoder.embed(TEXTS[:2]) @ docs.T, atol=1e-5)


# ---------------------------------------------------------------------------- adaptation

def _meta(scorer, meta_cfg, seed=0):
  """Meta-parameters away from the identity initialisation, so adaptation is visible."""
  meta = bilevel.init_meta(scorer, meta_cfg, jax.random.key(seed))
  rng = np.random.default_rng(seed)
  meta["params"]["head/w"] = meta["params"]["head/w"] + 0.05 * rng.standard_normal(
      meta["params"]["head/w"].shape).astype(np.float32)
  return meta


def _episode(enc, scorer, tools, labelled, rows, queries):
  """One episode as the trainer builds it: views and examples in one stream of ``rows`` rows
  (padding repeats row 0 with weight 0), fixed lengths."""
  lo = scorer.n_lower

  def lower(texts):  # at the tokenizer's buckets: programs the selector has compiled already
    return enc.lower_hidden(texts, lo, bucket_for(max(len(r) for r in enc.tokenizer.encode(
        texts))), batch_size=16)

  th, tm = lower([t.document() for t in tools])
  texts = [t for t, _ in labelled]
  vh, vm = lower(texts + [texts[0]] * (rows - len(texts)))
  y = np.array([y for _, y in labelled] + [0] * (rows - len(texts)), np.int32)
  qh, qm = lower(queries)
  empty = {"h": np.zeros((0, 16, th.shape[-1]), np.float32), "m": np.zeros((0, 16), np.int32),
           "y": np.zeros((0,), np.int32), "w": np.zeros((0,), np.float32)}
  ep = {"tools": {"h": th, "m": tm}, "support": empty,
        "views": {"h": vh, "m": vm, "y": y, "w": (np.arange(rows) < len(texts)).astype(
            np.float32)},
        "query": {"h": qh, "m": qm, "y": np.zeros(len(queries), np.int32),
                  "w": np.ones(len(queries), np.float32)}}
  return jax.tree.map(lambda x: x[None], ep)


def test_adaptation_matches_make_predict_and_is_cached(text_encoder, monkeypatch):
  scfg = ScorerConfig(n_top=1, adapt="top+head", temperature=0.05)
  mcfg = bilevel.MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.05,
                            learn_inner_lr="per_tensor")
  meta = _meta(Scorer(scfg, text_encoder.model), mcfg)
  sel = ToolSelector.from_meta(scfg, mcfg, meta, SelectorConfig(n_views=3), text_encoder)
  sel.set_tools(OPENAI, warmup=False)
  tools = toolspec.parse_tools(OPENAI)
  views = [(v, i) for i, t in enumerate(tools) for v in t.views(3)]
  examples = [(s["query"], NAMES.index(s["tool"])) for s in SUPPORT]
  predict = bilevel.make_predict(sel.scorer, mcfg)

  def reference(labelled):
    ep = _episode(text_encoder, sel.scorer, tools, labelled, len(views + examples), TEXTS)
    return np.asarray(predict(meta, ep)[0]) * scfg.temperature

  docs_only = sel.scores(TEXTS)
  np.testing.assert_allclose(docs_only, reference(views), atol=1e-4)
  sel.adapt(SUPPORT)
  with_examples = sel.scores(TEXTS)
  np.testing.assert_allclose(with_examples, reference(views + examples), atol=1e-4)
  # Adaptation moved the scores (the checks above do not compare unadapted models), and the
  # scores moved against what no adaptation gives.
  unadapted = np.asarray(bilevel.make_predict(sel.scorer, bilevel.MetaConfig(inner_steps=0))(
      meta, _episode(text_encoder, sel.scorer, tools, views, len(views), TEXTS))[0])
  assert np.abs(unadapted * scfg.temperature - docs_only).max() > 1e-3
  assert np.abs(with_examples - docs_only).max() > 1e-3

  # The documentation-only adaptation is cached per toolbox: no inner loop runs again.
  calls = []
  inner = sel._adapt  # pylint: disable=protected-access
  monkeypatch.setattr(sel, "_adapt", lambda *a: calls.append(1) or inner(*a))
  sel.adapt([])
  np.testing.assert_array_equal(sel.scores(TEXTS), docs_only)
  sel.set_tools(_plain()[:5], warmup=False)  # another toolbox: adapted once ...
  sel.set_tools(_mcp(), warmup=False)  # ... and the first one again, from the cache
  np.testing.assert_array_equal(sel.scores(TEXTS), docs_only)
  assert len(calls) == 1


def test_one_compile_per_bucket(text_encoder):
  sel = ToolSelector.pretrained(encoder=text_encoder).set_tools(OPENAI, warmup=False)
  size = sel._score._cache_size  # pylint: disable=protected-access
  sel.rank(["wake me up at six"])
  n = size()
  sel.rank(["play some jazz in the kitchen"])  # the same (1, 12) bucket: no new program
  assert size() == n
  # An (8, 80) bucket that nothing else uses: compiled once, then reused.
  long = [" ".join(["alarm"] * (70 + i)) for i in range(8)]  # 72 to 79 tokens
  sel.rank(long)
  assert size() == n + 1
  sel.rank(long[:7][::-1])
  sel.set_tools(_plain()[:5], warmup=False)  # 5 tools pad to the same 64 rows
  sel.rank(long[1:])
  sel.rank(["set a timer"])
  assert size() == n + 1


# ---------------------------------------------------------------------------- checkpoints

def mta_config(arg="sd,smoke"):
  """The trainer's own config file (a ConfigDict)."""
  spec = importlib.util.spec_from_file_location("mta_config",
                                                ROOT / "experiments" / "configs" / "mta.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def write_checkpoint(workdir: pathlib.Path, encoder, seed=0, arg="sd,smoke",
                     set_params=None) -> dict:
  """A real best checkpoint (the trainer's layout and record) of config ``mta.py:<arg>`` with a
  perturbed head and the parameters of ``set_params`` ({name: value}) set."""
  from mta_jax import run_config  # pylint: disable=import-outside-toplevel
  config = mta_config(arg)
  scfg, mcfg = run_config.model_configs(config)
  record = {"config": json.loads(config.to_json()), "train": {"best_val": 0.5}}
  scorer = Scorer(scfg, encoder.model)
  state = bilevel.init_train_state(scorer, mcfg, bilevel.make_optimizer(
      run_config.optim_config(config)), jax.random.key(seed))
  perturbed = _meta(scorer, mcfg, seed)["params"]["head/w"]
  state["meta"]["params"]["head/w"] = jax.numpy.asarray(perturbed)
  for name, value in (set_params or {}).items():
    assert name in state["meta"]["params"], name
    state["meta"]["params"][name] = jax.numpy.asarray(value, jax.numpy.float32)
  ck = checkpointing.Checkpoints(workdir, keep=1, async_save=False)
  ck.save(2, state, record, best=True)
  ck.wait()
  ck.close()
  return {"scorer_cfg": scfg, "meta_cfg": mcfg, "meta": bilevel.full_meta(state),
          "n_views": config.episodes.n_views}


def test_load_ranks_like_the_saved_meta_parameters(tmp_path, text_encoder, zero_shot):
  saved = write_checkpoint(tmp_path, text_encoder)
  sel = ToolSelector.load(str(tmp_path), encoder=text_encoder).set_tools(OPENAI, warmup=False)
  assert sel.scorer.cfg == saved["scorer_cfg"] and sel.meta_cfg == saved["meta_cfg"]
  assert sel.cfg.n_views == saved["n_views"]
  ref = ToolSelector.from_meta(saved["scorer_cfg"], saved["meta_cfg"], saved["meta"],
                               SelectorConfig(n_views=saved["n_views"]), text_encoder)
  np.testing.assert_allclose(sel.scores(TEXTS), ref.set_tools(OPENAI, warmup=False).scores(TEXTS),
                             atol=1e-6)
  assert np.abs(sel.scores(TEXTS) - zero_shot.scores(TEXTS)).max() > 1e-3


def test_missing_or_corrupt_checkpoint_is_one_clear_error(tmp_path, text_encoder):
  with pytest.raises(checkpointing.CheckpointError, match="does not exist"):
    ToolSelector.load(str(tmp_path / "nope"), encoder=text_encoder)
  with pytest.raises(checkpointing.CheckpointError, match="no checkpoint in"):
    ToolSelector.load(str(tmp_path), encoder=text_encoder)
  write_checkpoint(tmp_path, text_encoder)
  # A truncated metadata file (the CLI test truncates the array data, in a subprocess: Orbax
  # leaves that failed read's coroutines to the garbage collector, which pytest reports).
  victim = next((tmp_path / "best").glob("*/state/_METADATA"))
  victim.write_bytes(victim.read_bytes()[:victim.stat().st_size // 2])
  with pytest.raises(checkpointing.CheckpointError) as e:
    ToolSelector.load(str(tmp_path), encoder=text_encoder)
  assert str(tmp_path / "best") in str(e.value) and "\n" not in str(e.value)
