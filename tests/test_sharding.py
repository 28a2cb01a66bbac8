"""The episode-sharded meta-train step equals the single-device step (8 CPU devices)."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from mta_jax import bilevel, episodes, params as P, sharding, synthetic
    from mta_jax.models import bert
    from mta_jax.scorer import Scorer, ScorerConfig
    assert jax.device_count() == 8, jax.devices()
    model = bert.BertEncoder(synthetic.tiny_bert_config(16), rngs=nnx.Rngs(0))
    scorer = Scorer(ScorerConfig(n_top=1, adapt="top+head", temperature=0.2), model)
    cache, pool = synthetic.make_task_family(synthetic.SyntheticSpec(n_tools=20), 16)
    spec = episodes.EpisodeSpec(n_way=4, k_shot=2, q_query=2, n_views=1, mode="sd")
    idx = episodes.sample_episodes(np.random.default_rng(0), pool, spec, 16)
    feats = jax.device_get(episodes.gather(jax.tree.map(jnp.asarray, cache), idx))
    cfg = bilevel.MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.1,
                             learn_inner_lr="per_tensor")
    opt = bilevel.make_optimizer(bilevel.OptimConfig(lr=1e-3, warmup_steps=1, total_steps=10))
    init = lambda: bilevel.init_train_state(scorer, cfg, opt, jax.random.key(0))
    single = jax.device_put(init(), jax.devices()[0])
    s1, m1 = bilevel.make_meta_train_step(scorer, cfg, opt)(
        single, jax.device_put(feats, jax.devices()[0]), jax.random.key(1))
    mesh = sharding.episode_mesh()
    sharded_feats = sharding.shard_episodes(feats, mesh)
    assert len(sharded_feats["query"]["h"].sharding.device_set) == 8
    s8, m8 = bilevel.make_meta_train_step(scorer, cfg, opt, mesh=mesh)(
        sharding.replicate(init(), mesh), sharded_feats, jax.random.key(1))
    err = max(float(jnp.abs(a - b).max()) for a, b in
              zip(jax.tree.leaves(jax.device_get(s1["meta"])), jax.tree.leaves(jax.device_get(s8["meta"]))))
    merr = max(abs(float(m1[k]) - float(m8[k])) for k in m1)
    print("max param diff", err, "max metric diff", merr)
    assert err <= 1e-6 and merr <= 1e-5, (err, merr)
    print("OK")
""")


def test_sharded_step_equals_single_device_step():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0 and "OK" in out.stdout, out.stdout + out.stderr[-3000:]
