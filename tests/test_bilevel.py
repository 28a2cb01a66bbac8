"""The bi-level core: meta-gradients against finite differences, vmap against a loop, the inner
loop's effect, single tracing, and learning on a synthetic family of tasks."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mta_jax import bilevel, episodes, params as P, synthetic
from mta_jax.models import bert
from mta_jax.scorer import Scorer, ScorerConfig

HIDDEN = 8


def _setup(scfg: ScorerConfig, dtype=jnp.float32, spec=None, n_episodes=3, seed=0):
  model = bert.BertEncoder(synthetic.tiny_bert_config(HIDDEN), rngs=nnx.Rngs(seed), dtype=dtype)
  scorer = Scorer(scfg, model)
  spec = spec or episodes.EpisodeSpec(n_way=3, k_shot=2, q_query=2, n_views=1, mode="cd")
  cache, pool = synthetic.make_task_family(
      synthetic.SyntheticSpec(n_tools=12, queries_per_tool=6, views_per_tool=2, seed=seed),
      HIDDEN, dtype=np.float64 if dtype == jnp.float64 else np.float32)
  idx = episodes.sample_episodes(np.random.default_rng(seed), pool, spec, n_episodes)
  feats = episodes.gather(jax.tree.map(jnp.asarray, cache), idx)
  return scorer, feats


def _cast(tree, dtype):
  return jax.tree.map(lambda x: x.astype(dtype), tree)


def _direction(tree, seed):
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return treedef.unflatten([jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])


def _dot(a, b):
  return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _fd(f, x, d, eps=1e-5):
  plus = jax.tree.map(lambda a, b: a + eps * b, x, d)
  minus = jax.tree.map(lambda a, b: a - eps * b, x, d)
  return (f(plus) - f(minus)) / (2 * eps)


SCORERS = {
    "top+head": ScorerConfig(n_top=1, adapt="top+head", temperature=0.5),
    "lora+proto": ScorerConfig(n_top=1, adapt="lora+head", lora_rank=2, proto_head=True,
                               temperature=0.5),
}


@pytest.mark.parametrize("name", list(SCORERS))
@pytest.mark.parametrize("lr_mode", ["fixed", "per_element"])
def test_second_order_meta_gradient_matches_finite_differences(name, lr_mode):
  with jax.enable_x64(True):
    scorer, feats = _setup(SCORERS[name], jnp.float64)
    cfg = bilevel.MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.3,
                             learn_inner_lr=lr_mode)
    meta = _cast(bilevel.init_meta(scorer, cfg, jax.random.key(1)), jnp.float64)
    # Move away from the identity head / zero LoRA B so every term of the gradient is non-zero.
    meta = jax.tree.map(lambda x, d: x + 0.05 * d, meta, _direction(meta, 7))
    f = lambda m: bilevel.meta_loss(scorer, cfg, m, feats)[0]
    g = jax.grad(f)(meta)
    for seed in (11, 12):
      d = _direction(meta, seed)
      analytic, numeric = float(_dot(g, d)), float(_fd(f, meta, d))
      assert abs(analytic - numeric) <= 1e-6 * max(abs(numeric), 1e-3), (analytic, numeric)


def test_first_order_gradient_matches_its_definition_and_differs_from_second_order():
  with jax.enable_x64(True):
    scorer, feats = _setup(SCORERS["top+head"], jnp.float64)
    so = bilevel.MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.3)
    fo = dataclasses_replace(so, algorithm="fomaml")
    meta = _cast(bilevel.init_meta(scorer, so, jax.random.key(1)), jnp.float64)
    meta = jax.tree.map(lambda x, d: x + 0.05 * d, meta, _direction(meta, 7))
    g_fo = jax.grad(lambda m: bilevel.meta_loss(scorer, fo, m, feats)[0])(meta)
    g_so = jax.grad(lambda m: bilevel.meta_loss(scorer, so, m, feats)[0])(meta)

    # Definition: the query loss at θ = φ_fast + Δ with the adaptation step Δ held constant.
    def deltas(m):
      def one(ep):
        fast, _, _ = bilevel.adapt(scorer, so, m, ep)
        base, _ = P.partition(m["params"], scorer.cfg.fast_pattern)
        return {k: fast[k] - base[k] for k in base}
      return jax.vmap(one)(feats)

    delta = deltas(meta)

    def fo_definition(m):
      def one(ep, dlt):
        fast, slow = P.partition(m["params"], scorer.cfg.fast_pattern)
        fast = {k: fast[k] + dlt[k] for k in fast}
        return bilevel.streams_loss(scorer, P.merge(fast, slow), ep, ("query",))[0]
      return jax.vmap(one)(feats, delta).mean()

    for seed in (21, 22):
      d = _direction(meta, seed)
      analytic, numeric = float(_dot(g_fo, d)), float(_fd(fo_definition, meta, d))
      assert abs(analytic - numeric) <= 1e-6 * max(abs(numeric), 1e-3), (analytic, numeric)
    diff = P.global_norm(jax.tree.map(jnp.subtract, g_so, g_fo)) / P.global_norm(g_so)
    assert float(diff) > 1e-3, "first- and second-order meta-gradients should differ"


def dataclasses_replace(cfg, **kw):
  import dataclasses  # pylint: disable=import-outside-toplevel
  return dataclasses.replace(cfg, **kw)


@pytest.mark.parametrize("batching", ["vmap", "map"])
@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "protonet"])
def test_vmapped_meta_loss_equals_python_loop(algorithm, batching):
  scorer, feats = _setup(SCORERS["lora+proto"], n_episodes=4)
  cfg = bilevel.MetaConfig(algorithm=algorithm, inner_steps=2, inner_lr=0.1,
                           learn_inner_lr="per_tensor", episode_batching=batching)
  meta = bilevel.init_meta(scorer, cfg, jax.random.key(0))
  batched, _ = bilevel.meta_loss(scorer, cfg, meta, feats)
  looped = np.mean([
      float(bilevel.episode_loss(scorer, cfg, meta, jax.tree.map(lambda x, i=i: x[i], feats))[0])
      for i in range(4)])
  np.testing.assert_allclose(float(batched), looped, rtol=1e-5)


def test_inner_loop_lowers_support_loss_and_stays_finite():
  scorer, feats = _setup(SCORERS["top+head"], n_episodes=4)
  cfg = bilevel.MetaConfig(algorithm="maml", inner_steps=5, inner_lr=0.2)
  meta = bilevel.init_meta(scorer, cfg, jax.random.key(0))
  loss, metrics = bilevel.meta_loss(scorer, cfg, meta, feats)
  chex.assert_tree_all_finite((loss, metrics))
  assert float(metrics["inner/loss_after"]) < float(metrics["inner/loss_before"]) - 1e-3


def _train(algorithm, steps, scfg, lr=3e-3, seed=0, k_shot=2):
  spec = synthetic.SyntheticSpec(n_tools=40, queries_per_tool=10, views_per_tool=2, seed=seed)
  model = bert.BertEncoder(synthetic.tiny_bert_config(16), rngs=nnx.Rngs(seed))
  scorer = Scorer(scfg, model)
  cache, pool = synthetic.make_task_family(spec, 16)
  cache = jax.tree.map(jnp.asarray, cache)
  seen = synthetic.split_pool(pool, np.arange(0, 30))
  unseen = synthetic.split_pool(pool, np.arange(30, 40))
  ep_spec = episodes.EpisodeSpec(n_way=5, k_shot=k_shot, q_query=3, n_views=1, mode="cd")
  cfg = bilevel.MetaConfig(algorithm=algorithm, inner_steps=2, inner_lr=0.1)
  opt = bilevel.make_optimizer(bilevel.OptimConfig(lr=lr, warmup_steps=10, total_steps=steps))
  state = bilevel.init_train_state(scorer, cfg, opt, jax.random.key(seed))
  step = bilevel.make_meta_train_step(scorer, cfg, opt)
  predict = bilevel.make_predict(scorer, cfg)
  rng = np.random.default_rng(seed)

  def unseen_acc(state):
    idx = episodes.sample_episodes(np.random.default_rng(123), unseen, ep_spec, 64)
    feats = episodes.gather(cache, idx)
    logits = predict(bilevel.full_meta(state), feats)
    hit = (np.argmax(logits, -1) == np.asarray(feats["query"]["y"])) * np.asarray(
        feats["query"]["w"])
    return hit.sum() / np.asarray(feats["query"]["w"]).sum()

  before = unseen_acc(state)
  for i in range(steps):
    idx = episodes.sample_episodes(rng, seen, ep_spec, 8)
    state, metrics = step(state, episodes.gather(cache, idx), jax.random.key(i))
  chex.assert_tree_all_finite(metrics)
  return before, unseen_acc(state)


@pytest.mark.parametrize("algorithm", ["maml", "protonet"])
def test_meta_training_generalises_to_unseen_synthetic_tools(algorithm):
  scfg = ScorerConfig(n_top=1, adapt="head", temperature=0.1)
  # 0-shot (documentation views only): support queries would reveal the hidden rotation.
  before, after = _train(algorithm, 200, scfg, k_shot=0)
  # Chance is 0.2 (5-way). The zero-shot model cannot undo the hidden rotation.
  assert before < 0.45, before
  assert after > 0.55 and after > before + 0.3, (before, after)


@pytest.mark.parametrize("algorithm", ["fomaml", "reptile"])
def test_other_algorithms_learn(algorithm):
  scfg = ScorerConfig(n_top=1, adapt="head", temperature=0.1)
  before, after = _train(algorithm, 150, scfg)
  assert after > before + 0.15, (before, after)


def test_meta_train_step_traces_once():
  scorer, feats = _setup(SCORERS["top+head"], n_episodes=2)
  cfg = bilevel.MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.1)
  opt = bilevel.make_optimizer(bilevel.OptimConfig(lr=1e-3, warmup_steps=1, total_steps=10))
  state = bilevel.init_train_state(scorer, cfg, opt, jax.random.key(0))
  fn = bilevel.meta_train_step_fn(scorer, cfg, opt)
  step = jax.jit(chex.assert_max_traces(fn, n=1), donate_argnums=(0,))
  for i in range(3):
    shifted = jax.tree.map(lambda x, i=i: x + i if x.dtype == jnp.float32 else x, feats)
    state, metrics = step(state, shifted, jax.random.key(i))
  assert int(state["step"]) == 3
  for key in ("inner/loss_before", "inner/loss_after", "outer/loss", "outer/acc", "grad_norm",
              "param_norm"):
    assert key in metrics


def test_map_and_vmap_batching_give_the_same_meta_gradient():
  scorer, feats = _setup(SCORERS["top+head"], n_episodes=3)
  grads = []
  for batching in ("vmap", "map"):
    cfg = bilevel.MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.1,
                             episode_batching=batching)
    meta = bilevel.init_meta(scorer, cfg, jax.random.key(0))
    grads.append(jax.grad(lambda m, c=cfg: bilevel.meta_loss(scorer, c, m, feats)[0])(meta))
  chex.assert_trees_all_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)
