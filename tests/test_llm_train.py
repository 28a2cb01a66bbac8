"""Tool selection with the LLM, LoRA, LoRA SFT and MTA-LoRA: prompt and parsing, batching
bookkeeping, LoRA identity at init, a meta-gradient against finite differences (tiny random
llama, float64), and end-to-end smoke runs of the experiment for every method."""

import importlib.util
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mta_jax import bilevel, per_query
from mta_jax import params as P
from mta_jax.llm import batches, llama, lora, run, select, weights
from mta_jax.llm.learner import llm_learner
from mta_jax.llm.lm import LanguageModel
from mta_jax.llm.tokenizer import ChatTokenizer

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _config(arg):
  spec = importlib.util.spec_from_file_location("llm_config", ROOT / "experiments/configs/llm.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


def test_parse_choice_takes_the_last_bracketed_candidate_exactly():
  names = ["set_alarm", "start_timer", "create_reminder"]
  assert select.parse_choice("Use [start_timer] tool", names) == 1
  assert select.parse_choice("Not [set_alarm] but [ Create_Reminder ] tool", names) == 2
  assert select.parse_choice("Use [timer] tool", names) == -1  # a non-candidate is wrong
  assert select.parse_choice("Use start_timer", names) == -1


def test_prompt_lists_candidates_then_question_and_answer_format(llm_small, mta_ds):
  row = int(mta_ds.query_indices("test")[0])
  cands = mta_ds.tool_indices("test")[:5]
  prompt, answers = select.episode_tokens(llm_small, mta_ds, row, cands, select.PromptConfig())
  text = llm_small.tokenizer.decode(prompt, skip_special_tokens=False)
  positions = [text.index(f"{i + 1}. [{mta_ds.tools[t].name}]: {mta_ds.tools[t].description}")
               for i, t in enumerate(cands)]
  assert positions == sorted(positions)
  assert text.index(mta_ds.queries[row].text) > positions[-1]
  assert "Use [tool name] tool" in text and text.endswith("<|im_start|>assistant\n")
  assert [llm_small.tokenizer.decode(a) for a in answers] == [
      f"Use [{mta_ds.tools[t].name}] tool" for t in cands]


def test_selector_batching_matches_per_episode_scoring_and_compiles_once_per_bucket(llm_small, mta_ds):
  rows = mta_ds.query_indices("test")[::200][:6]
  cands, _ = per_query.candidate_sets(np.random.default_rng(0), mta_ds, rows, "cd", 3)
  sel = select.Selector(llm_small, mta_ds, select.PromptConfig(max_description_chars=30), batch_size=4,
                        max_new=3)
  out = sel.run(rows, cands)
  assert sel._fn._cache_size() == len(sel.shapes_seen)  # one compile per (prompt, answer) bucket
  for i in (0, 5):
    prompt, answers = select.episode_tokens(llm_small, mta_ds, rows[i], cands[i], sel.cfg)
    p = np.array([prompt], np.int32)
    a = np.full((1, 3, 16), 2, np.int32)
    for j, ans in enumerate(answers):
      a[0, j, :len(ans)] = ans
    direct = llm_small.score_answers(llm_small.params, p, np.array([len(prompt)], np.int32), a,
                                 np.array([[len(x) for x in answers]], np.int32))
    np.testing.assert_allclose(out["loglik"][i], np.asarray(direct)[0], atol=1e-3, rtol=0)
  assert out["gen_pick"].shape == (6,) and set(out["gen_pick"]) <= {-1, 0, 1, 2}


def test_lora_starts_as_the_identity_and_touches_only_attention(llm_small):
  cfg = lora.LoraConfig(rank=4)
  adapters = lora.init(llm_small.params, cfg, jax.random.key(0))
  assert set(adapters) == {f"lora/blocks/{t}/{f}" for t in "qkvo" for f in "ab"}
  merged = lora.apply(llm_small.params, adapters, cfg)
  assert all(np.array_equal(merged[k], llm_small.params[k]) for k in llm_small.params)
  adapters = {k: v + 0.01 for k, v in adapters.items()}
  merged = lora.apply(llm_small.params, adapters, cfg)
  changed = {k for k in llm_small.params if not np.array_equal(merged[k], llm_small.params[k])}
  assert changed == {f"blocks/{t}" for t in "qkvo"}


def test_sft_steps_reduce_the_answer_loss(llm_small, mta_ds):
  pcfg = select.PromptConfig(max_description_chars=30)
  rows = mta_ds.query_indices("train")[:4]
  batch = batches.sft_batch(np.random.default_rng(0), llm_small, mta_ds, rows,
                            mta_ds.tool_indices("train"), 2, 4, pcfg)
  batch = {"query": jax.tree.map(lambda x: x[None], batch)}  # the trainer's layout: one "episode"
  cfg = lora.LoraConfig(rank=4)
  opt = bilevel.make_optimizer(bilevel.OptimConfig(lr=3e-3, warmup_steps=1, total_steps=10,
                                                   clip_norm=1.0, weight_decay=0.0))
  learner = llm_learner(llm_small, cfg, 16)
  mcfg = bilevel.MetaConfig(algorithm="sft", inner_steps=0)
  state = bilevel.init_train_state(learner, mcfg, opt, jax.random.key(0))
  step = bilevel.make_meta_train_step(learner, mcfg, opt)
  losses = []
  for i in range(5):
    state, m = step(state, batch, jax.random.key(i))
    losses.append(float(m["outer/loss"]))
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.1, losses
  assert float(jnp.abs(state["meta"]["params"]["lora/blocks/q/b"]).max()) > 0


def _tiny_model():
  """A random 1-block llama in float64 (vocab 512; the tokenizer only supplies pad/stop ids)."""
  _, _, metadata = weights.load_gguf()
  cfg = llama.LlamaConfig(vocab_size=512, hidden_size=8, num_layers=1, num_heads=2,
                          num_kv_heads=1, head_dim=4, intermediate_size=16)
  state = nnx.split(llama.Llama(cfg, rngs=nnx.Rngs(0)), nnx.Param)[1]
  params = jax.tree.map(lambda x: np.asarray(x, np.float64), nnx.to_pure_dict(state))
  return LanguageModel(cfg, params, ChatTokenizer(metadata), dtype=jnp.float64)


def test_mta_lora_meta_gradient_matches_finite_differences():
  with jax.enable_x64(True):
    model = _tiny_model()
    rng = np.random.default_rng(0)

    def stream(n):
      pairs = [(list(rng.integers(3, 500, 6)), list(rng.integers(3, 500, 3))) for _ in range(n)]
      return jax.tree.map(jnp.asarray, batches.pack(pairs, 2, length=16, max_answer=4))

    episode = {"support": stream(3), "query": stream(2)}
    lcfg = lora.LoraConfig(rank=2, alpha=2.0)
    mcfg = bilevel.MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.5,
                              learn_inner_lr="per_tensor")
    learner = llm_learner(model, lcfg, 4)
    phi = bilevel.init_meta(learner, mcfg, jax.random.key(1))
    phi = jax.tree.map(lambda x: x.astype(jnp.float64), phi)
    keys = iter(jax.random.split(jax.random.key(2), 64))
    phi["params"] = {k: v + 0.3 * jax.random.normal(next(keys), v.shape, v.dtype)
                     for k, v in phi["params"].items()}
    # The core's one episode loss; the base weights are the learner's constants.
    f = jax.jit(lambda m: bilevel.episode_loss(learner, mcfg, {
        "params": P.merge(m["params"], model.params), "inner_lr": m["inner_lr"]}, episode)[0])
    g = jax.jit(jax.grad(f))(phi)
    assert float(P.global_norm(g["inner_lr"])) > 0  # the inner rates are meta-learned
    for _ in range(2):
      d = jax.tree.map(lambda x: jax.random.normal(next(keys), x.shape, x.dtype), phi)
      eps = 1e-5
      plus = jax.tree.map(lambda x, y: x + eps * y, phi, d)
      minus = jax.tree.map(lambda x, y: x - eps * y, phi, d)
      numeric = float((f(plus) - f(minus)) / (2 * eps))
      analytic = float(sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g),
                                                           jax.tree.leaves(d))))
      assert abs(analytic - numeric) <= 1e-6 * max(abs(numeric), 1e-3), (analytic, numeric)


@pytest.mark.parametrize("method", ["base", "sft", "mta"])
def test_experiment_smoke_runs_end_to_end(method, tmp_path):
  summary = run.run(_config(f"{method},smoke"), tmp_path, "smoke")
  saved = json.loads((tmp_path / "eval.json").read_text())
  assert saved["row"] == run.ROW_NAMES[method] and saved["kind"] == "llm"
  assert saved["evaluated_on"]["mta_tools"].startswith("8 of the")
  mt = saved["results"]["mta_tools"]
  shots = ["0shot", "k1"] if method == "mta" else ["0shot"]
  assert sorted(mt["sd"]) == shots
  for shot in shots:
    sd = mt["sd"][shot]
    # 4 tools x 2 queries; with K=1 one query of each tool is support, not scored.
    assert sd["n_queries"] == (8 if shot == "0shot" else 4) and 0.0 <= sd["mean"] <= 1.0
    assert 0.0 <= sd["generate"]["mean"] <= 1.0
  if method == "sft":
    log = summary["train"]["sft"]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["outer/loss"]) for r in log)
  if method == "mta":
    log = summary["train"]["mta"]
    assert [r["step"] for r in log] == [1, 2]
    assert all(np.isfinite(r["outer/loss"]) and np.isfinite(r["inner/loss_after"]) for r in log)


def test_rerun_keeps_finished_datasets_and_restarts_under_another_config(tmp_path, monkeypatch):
  first = run.run(_config("base,smoke"), tmp_path, "smoke")
  def no_scoring(*args, **kwargs):
    raise AssertionError("a finished dataset was scored again")
  monkeypatch.setattr(run.task_eval, "evaluate", no_scoring)
  moved = _config("base,smoke")
  with moved.unlocked():
    moved.eval.external_data_dir = str(tmp_path / "elsewhere")  # a location, not a setting
  again = run.run(moved, tmp_path, "smoke")
  assert again["results"] == first["results"] and again["resumed"] == ["mta_tools"]
  # Another dataset's own cap, or a dataset added to the list, leaves this one's results valid.
  widened = _config("base,smoke")
  widened.eval.max_queries_by_dataset.apibench = 5
  widened.eval.datasets = ("mta_tools", "apibench")
  widened.eval.external_data_dir = str(tmp_path / "elsewhere")  # apibench: not built, skipped
  again = run.run(widened, tmp_path, "smoke")
  assert again["results"]["mta_tools"] == first["results"]["mta_tools"]
  assert "skipped" in again["results"]["apibench"]
  # An eval.json written before max_queries_by_dataset existed still resumes.
  saved = json.loads((tmp_path / "eval.json").read_text())
  del saved["config"]["eval"]["max_queries_by_dataset"]
  (tmp_path / "eval.json").write_text(json.dumps(saved))
  assert run.run(_config("base,smoke"), tmp_path, "smoke")["resumed"] == ["mta_tools"]
  for setting in ("eval.seeds", "eval.max_queries_by_dataset.mta_tools"):
    other = _config("base,smoke")
    *parents, last = setting.split(".")
    node = other
    for p in parents:
      node = node[p]
    node[last] = (1,) if last == "seeds" else 3
    with pytest.raises(AssertionError, match="scored again"):
      run.run(other, tmp_path, "smoke")


def test_query_cap_per_dataset_overrides_the_shared_caps():
  ecfg = _config("base").eval
  ecfg.max_queries, ecfg.external_max_queries = 600, 150
  ecfg.max_queries_by_dataset.apibench = 60
  ecfg.max_queries_by_dataset.mta_tools = 0
  assert run.query_cap(ecfg, "apibench", "mta_tools") == 60
  assert run.query_cap(ecfg, "toolalpaca", "mta_tools") == 150
  assert run.query_cap(ecfg, "mta_tools", "mta_tools") == 0  # 0: every query
  ecfg.max_queries_by_dataset.mta_tools = -1
  assert run.query_cap(ecfg, "mta_tools", "mta_tools") == 600


@pytest.mark.parametrize("path", sorted(p.name for p in (ROOT / "experiments" / "flags").glob(
    "llm_*.flags")))
def test_every_llm_flagfile_sets_known_keys_to_values_of_their_type(path):
  import ast  # pylint: disable=import-outside-toplevel
  import re  # pylint: disable=import-outside-toplevel
  from mta_jax import data  # pylint: disable=import-outside-toplevel
  lines = [l.strip() for l in (ROOT / "experiments" / "flags" / path).read_text().splitlines()
           if l.strip().startswith("--")]
  arg = next(l.split("=", 1)[1] for l in lines if l.startswith("--config="))
  config = _config(arg.split(":", 1)[1])
  for line in lines:
    m = re.match(r"--config\.([^=]+)=(.*)", line)
    if m:
      *parents, last = m.group(1).split(".")
      node = config
      for p in parents:
        node = node[p]
      assert last in node, (path, line)
      value = ast.literal_eval(m.group(2))
      assert isinstance(value, type(node[last])), (path, line, type(node[last]))
      node[last] = value
  assert set(config.eval.datasets) <= set(data.KNOWN), config.eval.datasets
  assert set(config.eval.generate_seeds) <= set(config.eval.seeds)


def test_llm_rows_score_the_hard_tasks_with_the_encoder_rows_neighbours(tmp_path, monkeypatch):
  """The hard modes reach the LLM's task scorer (documentation similarity stubbed: the real one
  embeds every query of the dataset with MiniLM, which the encoder tests cover)."""
  from mta_jax import hard_tasks  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(hard_tasks, "doc_embeddings", lambda ds, cache_dir: np.random.default_rng(
      0).normal(size=(len(ds.tools), 8)))
  config = _config("base,smoke")
  config.eval.modes = ("sd", "hard5")
  saved = run.run(config, tmp_path, "smoke")
  hard = saved["results"]["mta_tools"]["hard5"]["0shot"]
  # 4 scored tools x 2 queries, each tool the centre of one 5-way task.
  assert hard["n_queries"] == 8 and 0.0 <= hard["mean"] <= 1.0, hard
