r"""Meta-training on MTA-Tools: MTA (second-order MAML, learned per-tensor inner learning rates)
and, by ``arg``, the episodic baselines and SFT. Run with:

    python experiments/meta_train.py --config=experiments/configs/mta.py:sd \
        --workdir=workdirs/mta_sd

``arg`` is a comma-separated list of tokens:
- ``sd`` / ``cd``: training episodes' candidates from one domain (default) or from all;
- an algorithm of ``mta_jax.algorithms`` (``maml`` = MTA, default; ``fomaml``, ``reptile``,
  ``protonet``, ``imaml``, ``sft``, and any registered later), with its row's config defaults;
- ``top``: adapt the top transformer layer and the head (``n_top=1``; GPU-sized), instead of the
  head on frozen sentence embeddings (``n_top=0``; the CPU default, cached once);
- ``hybrid``: the hybrid scorer, dense cosine + a BM25 term (``mta_jax.lexical``) mixed by
  meta-learned weights (``scorer.lexical``);
- ``hard``: hard-negative training episodes (``episodes.hard_fraction`` 0.5);
- ``demo``: the `make demo` budget (minutes on a 2-core CPU);
- ``smoke``: a few tiny steps (tests).

Flagfiles in ``experiments/flags/`` pick an ``arg`` and carry overrides only.
"""

import ml_collections

from mta_jax import algorithms


def get_config(arg: str = "sd") -> ml_collections.ConfigDict:
  tokens = [t for t in (arg or "sd").split(",") if t]
  ALGORITHMS = algorithms.names()  # pylint: disable=invalid-name  # read now: rows may be added
  unknown = [t for t in tokens if t not in ALGORITHMS + ("sd", "cd", "top", "hybrid", "hard", "demo", "smoke")]
  if unknown:
    raise ValueError(f"mta.py: unknown config arg token(s) {unknown}; known: sd, cd, top, hybrid, hard, demo, "
                     f"smoke, {', '.join(ALGORITHMS)}")
  algo = next((t for t in tokens if t in ALGORITHMS), "maml")

  c = ml_collections.ConfigDict()
  c.seed = 0
  c.dataset = "mta_tools"  # or a union of training sets, e.g. "mta_tools+metatool"
  c.dataset_version = ""  # MTA-Tools release, e.g. "1.1.0" ("": the builder's default, 1.0.0)
  c.data_dir = "tfds_data"  # a TFDS data dir, or a folder with tools.jsonl + qa.jsonl
  c.cache_dir = "workdirs/features"  # cached encoder outputs, shared by runs ("" = workdir)
  c.init_from = ""  # a workdir whose best checkpoint initialises the meta-parameters
  c.progress = True

  c.scorer = ml_collections.ConfigDict(dict(
      backbone="minilm-l6", n_top=0, adapt="head", head=True, proto_head=False, temperature=0.05, train_top=True,
      lora_rank=0, lora_alpha=16.0,
      # The hybrid scorer (token ``hybrid``): + a BM25 term mixed by meta-learned weights;
      # lexical_weight is mix/lex's initial value, chosen on validation tools (RESULTS.md).
      lexical=False, lexical_weight=0.2))
  c.meta = ml_collections.ConfigDict(dict(
      algorithm=algo, inner_steps=3, inner_lr=0.05, learn_inner_lr="per_tensor", remat=False))
  # The algorithm's own defaults (e.g. fixed inner rates for the baselines: MTA's learned rates
  # are part of what is being compared) and the values it fixes.
  c.meta.update(dict(algorithms.get(algo).defaults + algorithms.get(algo).fixed))
  c.optim = ml_collections.ConfigDict(dict(
      lr=1e-3, warmup_steps=50, weight_decay=1e-4, clip_norm=1.0, lr_of_inner_lr=1e-3))
  # Training episodes: 5 candidates, adapted on their documentation views (the paper's 0-shot
  # setting), outer loss on 5 queries a tool.
  c.episodes = ml_collections.ConfigDict(dict(
      n_way=5, k_shot=0, q_query=5, n_views=4, mode="cd" if "cd" in tokens else "sd", batch=16,
      # hard negatives (token ``hard``): this share of the episodes are a tool and its 4 nearest
      # training tools by documentation similarity, like the hard 5-way test tasks
      hard_fraction=0.5 if "hard" in tokens else 0.0))
  c.features = ml_collections.ConfigDict(dict(q_len=48, d_len=128, n_views=4))
  c.sft = ml_collections.ConfigDict(dict(batch=64))
  # Data parallel: "all" local devices (every process's under jax.distributed) or N; the batch
  # (episodes.batch, or sft.batch for SFT) must divide over them. One device = the plain program.
  c.mesh = ml_collections.ConfigDict(dict(devices="all"))

  c.total_steps = 1500
  c.log_every = 25
  c.eval_every = 250
  c.ckpt_every = 250
  c.keep_ckpts = 3
  # Validation: 5-candidate SD episodes on the validation tools (distractors may be train
  # tools: validation has 2 tools a domain), adapted on views, one episode seed.
  c.eval = ml_collections.ConfigDict(dict(mode="sd", n_way=5, seeds=1, batch=8))

  if "top" in tokens:
    c.scorer.n_top, c.scorer.adapt = 1, "top+head"
    c.optim.lr = 1e-4
    c.episodes.batch = 8
  if "hybrid" in tokens:
    c.scorer.lexical = True
  if "demo" in tokens:
    c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 300, 10, 100, 100
  if "smoke" in tokens:
    c.total_steps, c.log_every, c.eval_every, c.ckpt_every = 6, 1, 3, 2
    c.episodes.batch, c.episodes.q_query, c.sft.batch = 2, 2, 8
    c.optim.warmup_steps = 2
    c.progress = False
  return c
