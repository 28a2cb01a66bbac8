r"""SmolLM2-135M-Instruct as the tool selector: Base (zero-shot prompt), LoRA SFT and MTA-LoRA.

    python experiments/llm_select.py --config=experiments/configs/llm.py:base \
        --workdir=workdirs/llm_base

``arg`` is a comma-separated list of tokens:
- ``base`` (default): zero-shot prompt, no training; ``sft``: LoRA (rank 8, attention
  projections) trained on the seen (train-split) tools' queries with the answer-string loss;
  ``mta``: MTA-LoRA, the bi-level core adapting the LoRA factors per episode and meta-learning
  their initialisation and per-tensor inner learning rates;
- ``smoke``: a tiny, truncated model (2 of 30 blocks), 2-way episodes with short descriptions and
  a couple of steps: the end-to-end check that ``make test`` runs on a CPU;
- ``gpu``: full-size training budgets sized for one accelerator (not run on the 2-core CPU).

Flagfiles in ``experiments/flags/llm_*.flags`` pick an ``arg`` and carry overrides only.
"""

import ml_collections

METHODS = ("base", "sft", "mta")


def get_config(arg: str = "base") -> ml_collections.ConfigDict:
  tokens = [t for t in (arg or "base").split(",") if t]
  unknown = [t for t in tokens if t not in METHODS + ("smoke", "gpu")]
  if unknown:
    raise ValueError(f"llm.py: unknown config arg token(s) {unknown}; known: "
                     f"{', '.join(METHODS)}, smoke, gpu")
  method = next((t for t in tokens if t in METHODS), "base")

  c = ml_collections.ConfigDict()
  c.method = method
  c.learner = "llm"  # mta_jax.train's set-up for the sft and mta methods (mta_jax.llm.trainer)
  c.seed = 0
  c.dataset = "mta_tools"
  c.data_dir = ""  # "": MTA-Tools' committed JSONL; else a TFDS data dir or a JSONL folder
  c.progress = True

  c.model = ml_collections.ConfigDict(dict(num_layers=0, dtype="float32"))  # 0: all 30 blocks
  c.prompt = ml_collections.ConfigDict(dict(system="", max_description_chars=0, parameters=False))

  # The evaluator's protocol (mta_jax.run_eval, the encoder rows' tasks): 5 candidates (gold +
  # 4 distractors from the gold's group (SD) or from all tools (CD)), 5 episode seeds, on the
  # unseen test tools of each dataset in ``datasets`` (MTA-Tools from ``data_dir``, the others
  # from ``external_data_dir``). ``max_queries`` (MTA-Tools) and ``external_max_queries`` keep
  # every k-th scored query in dataset order (the smallest k keeping at most that many; 0 = all;
  # ``max_queries_by_dataset.<name>`` overrides both for one dataset);
  # ``max_tools`` keeps the first scored tools and ``max_per_tool`` the first queries of each
  # (0 = all). ``generate_seeds`` limits
  # greedy decoding (the paper's parsed read-out) to those seeds (empty = all). ``shots``:
  # 0shot, k1, k5 (K labelled questions per candidate, for MTA-LoRA's test-time adaptation).
  # ``modes`` may add ``hard5``/``hard10`` (mta_jax.hard_tasks: each tool with its nearest tools
  # by MiniLM documentation similarity, whose feature cache goes to ``cache_dir``).
  c.eval = ml_collections.ConfigDict(dict(
      datasets=("mta_tools",), external_data_dir="tfds_data", split="test", modes=("sd", "cd"),
      shots=("0shot", "k1") if method == "mta" else ("0shot",), seeds=(0, 1, 2, 3, 4), n_way=5,
      max_queries=0, external_max_queries=0, max_tools=0, max_per_tool=0, batch_size=16,
      max_new=24, generate=True, generate_seeds=(), cache_dir="workdirs/features"))
  # A dataset's own query cap, replacing max_queries / external_max_queries for it (-1: none).
  c.eval.max_queries_by_dataset = ml_collections.ConfigDict(
      {name: -1 for name in ("mta_tools", "toolalpaca", "api_bank", "apibench", "metatool")})
  # The modes the table reports for each external benchmark (others: ``modes``).
  c.eval.modes_by_dataset = ml_collections.ConfigDict(dict(
      api_bank=("cd",), apibench=("sd",), metatool=("cd",)))

  c.lora = ml_collections.ConfigDict(dict(rank=8, alpha=16.0, targets=("q", "k", "v", "o")))
  c.optim = ml_collections.ConfigDict(dict(
      lr=2e-4, warmup_steps=50, weight_decay=0.0, clip_norm=1.0, lr_of_inner_lr=1e-3))
  # LoRA SFT: prompts of n_way candidates (gold + distractors, SD or CD at random) over the
  # train-split tools, loss = negative log-likelihood of "Use [gold] tool".
  c.sft = ml_collections.ConfigDict(dict(steps=1000, batch_size=16, n_way=5))
  # MTA-LoRA: an episode = n_way train tools, k_shot support and q_query query prompts a tool
  # (all listing the same n_way tools); inner SGD on the LoRA factors, outer loss on the queries.
  # ``algorithm``: a row of mta_jax.algorithms (``sft`` for LoRA SFT; for MTA-LoRA ``maml`` or
  # another episodic one: fomaml, reptile, imaml).
  c.meta = ml_collections.ConfigDict(dict(
      algorithm="sft" if method == "sft" else "maml", inner_steps=1, inner_lr=1e-3,
      learn_inner_lr="fixed" if method == "sft" else "per_tensor",
      steps=500, meta_batch=4, n_way=5, k_shot=1, q_query=1, mode="sd"))
  # The trainer's bookkeeping (mta_jax.train): metrics every log_every steps, validation (best
  # checkpoint) every eval_every, periodic checkpoints every ckpt_every (keep_ckpts kept).
  # Data parallel for sft/mta training: "all" devices or N; meta.meta_batch (mta) or
  # sft.batch_size (sft) must divide over them.
  c.mesh = ml_collections.ConfigDict(dict(devices="all"))
  c.log_every = 10
  c.eval_every = 100
  c.ckpt_every = 100
  c.keep_ckpts = 2

  if "gpu" in tokens:
    c.eval.batch_size = 32
    c.sft.batch_size = 32
    c.meta.meta_batch = 8
  if "smoke" in tokens:
    c.model.num_layers = 2
    c.prompt.max_description_chars = 40
    c.eval.update(seeds=(0,), modes=("sd",), n_way=2, max_tools=4, max_per_tool=2,
                  batch_size=2, max_new=4)
    c.sft.update(steps=2, batch_size=2, n_way=2)
    c.meta.update(steps=2, meta_batch=1, n_way=2, k_shot=1, q_query=1)
    c.optim.warmup_steps = 1
    c.log_every = c.eval_every = c.ckpt_every = 1
    c.progress = False
  return c
