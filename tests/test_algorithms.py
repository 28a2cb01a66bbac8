"""The algorithm table: iMAML's implicit meta-gradient against float64 finite differences of the
proximal problem's solution, its memory against the number of inner steps, and a toy algorithm
registered through the table that training, evaluation and the selector all pick up."""

import collections
import dataclasses
import json
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mta_jax import algorithms, bilevel, episodes, inference, run_config, run_eval, synthetic
from mta_jax.models import bert
from mta_jax.scorer import Scorer, ScorerConfig

# pylint: disable-next=wrong-import-order
from test_bilevel import _direction, _dot, _fd  # the finite-difference helpers
from test_train import ROOT, data_dir, small_config  # noqa: F401  (data_dir is a fixture)


def _synthetic(scfg, hidden=8, dtype=jnp.float32, n_episodes=3, seed=0):
  model = bert.BertEncoder(synthetic.tiny_bert_config(hidden), rngs=nnx.Rngs(seed), dtype=dtype)
  cache, pool = synthetic.make_task_family(
      synthetic.SyntheticSpec(n_tools=12, queries_per_tool=6, views_per_tool=2, seed=seed),
      hidden, dtype=np.float64 if dtype == jnp.float64 else np.float32)
  spec = episodes.EpisodeSpec(n_way=3, k_shot=2, q_query=2, n_views=1, mode="cd")
  idx = episodes.sample_episodes(np.random.default_rng(seed), pool, spec, n_episodes)
  return Scorer(scfg, model), episodes.gather(jax.tree.map(jnp.asarray, cache), idx)


@pytest.mark.parametrize("adapt", ["head", "top+head"])
def test_imaml_meta_gradient_matches_finite_differences_of_the_proximal_solution(adapt):
  """d/dφ L_query(θ*(φ)) with θ*(φ) = argmin L_support(θ) + λ/2 |θ - φ_fast|², solved to machine
  precision (400 contracting steps), against central differences of that function in float64.
  With ``head``, the top layer is slow but still moves θ* (its implicit term is checked too)."""
  with jax.enable_x64(True):
    scorer, feats = _synthetic(ScorerConfig(n_top=1, adapt=adapt, temperature=0.5), dtype=jnp.float64)
    cfg = bilevel.MetaConfig(algorithm="imaml", inner_steps=400, inner_lr=0.2, prox_lambda=2.0,
                             cg_steps=300)
    meta = jax.tree.map(lambda x: x.astype(jnp.float64),
                        bilevel.init_meta(scorer, cfg, jax.random.key(1)))
    meta = jax.tree.map(lambda x, d: x + 0.05 * d, meta, _direction(meta, 7))
    f = jax.jit(lambda m: bilevel.meta_loss(scorer, cfg, m, feats)[0])
    g = jax.jit(jax.grad(lambda m: bilevel.meta_loss(scorer, cfg, m, feats)[0]))(meta)
    assert float(sum(jnp.abs(x).sum() for x in jax.tree.leaves(g["params"]))) > 0
    for seed in (11, 12):
      d = _direction(meta, seed)
      d["inner_lr"] = jax.tree.map(jnp.zeros_like, d["inner_lr"])  # θ* does not depend on it
      analytic, numeric = float(_dot(g, d)), float(_fd(f, meta, d))
      assert abs(analytic - numeric) <= 1e-6 * max(abs(numeric), 1e-3), (analytic, numeric)


def _temp_bytes(algorithm, inner_steps):
  scorer, feats = _synthetic(ScorerConfig(n_top=1, adapt="top+head", temperature=0.5), hidden=16,
                             n_episodes=4)
  opt = bilevel.make_optimizer(bilevel.OptimConfig())
  cfg = bilevel.MetaConfig(algorithm=algorithm, inner_steps=inner_steps, inner_lr=0.1)
  state = bilevel.init_train_state(scorer, cfg, opt, jax.random.key(0))
  step = bilevel.make_meta_train_step(scorer, cfg, opt)
  stats = step.lower(state, feats, jax.random.key(0)).compile().memory_analysis()
  return stats.temp_size_in_bytes


def test_imaml_memory_does_not_grow_with_inner_steps_while_maml_does():
  imaml = {n: _temp_bytes("imaml", n) for n in (1, 5, 20)}
  maml = {n: _temp_bytes("maml", n) for n in (1, 20)}
  assert imaml[20] <= 1.01 * imaml[1] and imaml[20] == imaml[5], imaml
  assert maml[20] > 5 * maml[1], maml  # the measure sees an unrolled inner loop's residuals


@pytest.fixture
def toy_algorithm():
  """A first-order MAML variant registered under a new name, counting its traces."""
  traces = collections.Counter()

  def loss(learner, cfg, meta, episode):
    traces["episode_loss"] += 1
    return algorithms.maml_loss(learner, cfg, meta, episode)

  def predict(learner, cfg, meta, episode):
    traces["predict_state"] += 1
    return algorithms.adapted_state(learner, cfg, meta, episode)

  algorithms.register(algorithms.Algorithm("toy_fo", "Toy FO-MAML", predict_state=predict,
                                           episode_loss=loss, first_order=True,
                                           defaults=(("learn_inner_lr", "fixed"),)))
  yield traces
  del algorithms.TABLE["toy_fo"]


def test_an_algorithm_registered_in_the_table_is_picked_up_everywhere(toy_algorithm, data_dir,
                                                                      tmp_path):
  from mta_jax import train  # pylint: disable=import-outside-toplevel
  from mta_jax.selector import ToolSelector  # pylint: disable=import-outside-toplevel
  traces = toy_algorithm
  config = small_config(data_dir, **{"meta.algorithm": "toy_fo"})
  run_config.validate(config)  # a valid choice as soon as it is registered
  train.train(config, tmp_path)
  assert traces["episode_loss"] >= 1 and traces["predict_state"] >= 1  # trained and validated

  bundle = inference.restore_for_inference(tmp_path, "best")
  assert bundle.meta_cfg.algorithm == "toy_fo" and bundle.meta_cfg.first_order
  assert bundle.meta_cfg.algo.row == "Toy FO-MAML"
  assert bundle.meta_cfg.algo.adapts_at_test(bundle.meta_cfg)
  before = traces["predict_state"]
  ds = run_config.load_dataset("mta_tools", str(data_dir))
  from mta_jax import features  # pylint: disable=import-outside-toplevel
  from mta_jax.models import registry  # pylint: disable=import-outside-toplevel
  enc = registry.load(bundle.scorer_cfg.backbone)
  cache = features.text_cache(ds, run_config.feature_spec(config, enc.cfg.num_layers),
                              config.cache_dir, enc)
  fn = run_eval.model_scorer(Scorer(bundle.scorer_cfg, enc.model), bundle.meta_cfg,
                             cache.arrays())(jax.device_put(bundle.meta))
  split = run_eval.split_for(ds, "test")
  res = run_eval.protocol(fn, ds, split, "sd", 0, run_eval.EvalSpec(seeds=(0,), n_way=3),
                          cache.main_doc, cache.view_rows)
  assert 0.0 <= res["mean"] <= 1.0 and traces["predict_state"] > before  # evaluation used it

  before = traces["predict_state"]
  selector = ToolSelector.load(str(tmp_path))
  selector.set_tools(json.loads((ROOT / "examples/toolbox/tools.json").read_text()))
  assert selector.rank(["will it rain in Lisbon tomorrow?"], top_k=2)[0]
  assert traces["predict_state"] > before  # the selector's adaptation is the same function


def test_no_algorithm_name_is_compared_as_a_string_outside_the_table():
  """`algorithm == "..."` (or `in (...)` of names) belongs in mta_jax/algorithms.py only."""
  names = "|".join(algorithms.names())
  pattern = re.compile(rf"""algorithm\s*(==|!=|in|not in)\s*[(\[]?\s*["']({names})["']""")
  offenders = []
  for path in list((ROOT / "mta_jax").rglob("*.py")) + list((ROOT / "experiments").rglob("*.py")):
    if path.name in ("algorithms.py", "imaml.py"):
      continue
    for i, line in enumerate(path.read_text().splitlines(), 1):
      if pattern.search(line):
        offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
  assert not offenders, offenders


def test_every_row_has_a_distinct_report_name_and_consistent_flags():
  rows = algorithms.row_names()
  assert len(set(rows.values())) == len(rows)
  for algo in algorithms.TABLE.values():
    assert (algo.episode_loss is None) != (algo.meta_grad is None), algo.name
    assert algo.min_inner_steps == (1 if algo.inner_loop else 0), algo.name
    fixed = dict(algo.fixed)
    cfg = bilevel.MetaConfig(algorithm=algo.name, **{
        "inner_steps": fixed.get("inner_steps", 1), "learn_inner_lr": fixed.get(
            "learn_inner_lr", "fixed")})
    cfg.validate()
  with pytest.raises(ValueError, match="did you mean 'imaml'"):
    algorithms.get("imalm")
  with pytest.raises(ValueError, match="already registered"):
    algorithms.register(dataclasses.replace(algorithms.get("maml")))
