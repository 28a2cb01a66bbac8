"""The model under adaptation: score(q, t) = cos(head(E(q)), E(t)) / temperature.

``E`` is the top ``n_top`` transformer layers of the pretrained encoder applied to cached lower
hidden states, then mean pooling; ``head`` is a square projection of query embeddings
(identity at initialisation, so the untrained scorer is the zero-shot encoder). Optionally:
- LoRA adapters on the top layers' dense kernels, merged into the kernel at apply time
  (W + A B * alpha / r), so the NNX layers need no change;
- a prototype-initialised class head (Proto-MAML): per-episode class weights that start as the
  tools' embeddings and adapt in the inner loop;
- a lexical term (the hybrid scorer, ``lexical=True``): score = (w_dense cos + w_lex lex) / τ
  with ``lex`` the normalised BM25 of the text against the tool's document
  (``mta_jax.lexical``, carried by each episode stream as ``"lex"``) and the two weights
  parameters ``mix/dense`` (init 1) and ``mix/lex`` (init ``lexical_weight``): meta-learned,
  and adapted in the inner loop when the adapt pattern names ``mix/``.

Which parameters adapt in the inner loop is a regular expression over the flat parameter names
(``ScorerConfig.fast_pattern``); everything else is meta-learned in the outer loop only.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mta_jax import params as P
from mta_jax.models import bert

ADAPT_PATTERNS = {
    "none": r"^$",
    "head": r"^head/",
    "lora": r"^lora/",
    "lora+head": r"^(lora|head)/",
    "top": r"^top/",
    "top+head": r"^(top|head)/",
    "head+mix": r"^(head|mix)/",
    "top+head+mix": r"^(top|head|mix)/",
}
LORA_TARGETS = ("query", "key", "value", "attn_out")


@dataclasses.dataclass(frozen=True)
class ScorerConfig:
  """Static (hashable) description of the scorer; part of the jitted step's closure."""

  n_top: int = 1
  adapt: str = "top+head"
  backbone: str = "minilm-l6"  # a name of mta_jax.models.registry.BACKBONES
  head: bool = True
  proto_head: bool = False
  temperature: float = 0.05
  train_top: bool = True
  lora_rank: int = 0
  lora_alpha: float = 16.0
  lora_targets: tuple[str, ...] = LORA_TARGETS
  lexical: bool = False  # the hybrid scorer: add the BM25 term (module docstring)
  lexical_weight: float = 0.2  # initial mix/lex (chosen on validation tools: make tune-hybrid)

  @property
  def fast_pattern(self) -> str:
    return ADAPT_PATTERNS.get(self.adapt, self.adapt)

  def validate(self, num_layers: int) -> None:
    if not 0 <= self.n_top <= num_layers:
      raise ValueError(f"scorer.n_top must be in [0, {num_layers}], got {self.n_top}")
    if self.adapt.startswith("lora") and self.lora_rank <= 0:
      raise ValueError("scorer.adapt uses LoRA but scorer.lora_rank is 0: set lora_rank >= 1")
    if self.adapt.startswith("lora") and self.n_top == 0:
      raise ValueError("scorer.adapt uses LoRA but scorer.n_top is 0: no layers to adapt")
    if self.temperature <= 0:
      raise ValueError(f"scorer.temperature must be > 0, got {self.temperature}")
    if "mix" in self.adapt and not self.lexical:
      raise ValueError(f"scorer.adapt={self.adapt!r} adapts the hybrid weights (mix/) but "
                       "scorer.lexical is False: set scorer.lexical=True")


def _normalize(x: jax.Array) -> jax.Array:
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Scorer:
  """Pure functions of flat parameter dicts; holds only static structure (graphdef, paths)."""

  def __init__(self, cfg: ScorerConfig, encoder_model: bert.BertEncoder):
    cfg.validate(encoder_model.cfg.num_layers)
    self.cfg = cfg
    self.hidden_size = encoder_model.cfg.hidden_size
    self.n_lower = encoder_model.cfg.num_layers - cfg.n_top
    top = bert.top_layers(encoder_model, cfg.n_top)
    self._graphdef, state = nnx.split(top, nnx.Param)
    top_flat, self._paths = P.flatten(nnx.to_pure_dict(state), prefix="")
    # Host copies: ``init`` must hand out fresh buffers, because the train step donates its state.
    self._pretrained_top = {k: np.asarray(v) for k, v in top_flat.items()}
    self._lora_keys = tuple(
        k for k in self._pretrained_top
        if k.endswith("/kernel") and k.split("/")[-2] in cfg.lora_targets) if cfg.lora_rank else ()

  def init(self, key: jax.Array) -> P.Params:
    """Meta-parameters at initialisation: pretrained top layers, identity head, LoRA A~N, B=0."""
    params = {f"top/{k}": jnp.array(v) for k, v in self._pretrained_top.items()}
    h = self.hidden_size
    if self.cfg.head:
      params["head/w"] = jnp.eye(h, dtype=jnp.float32)
      params["head/b"] = jnp.zeros((h,), jnp.float32)
    keys = jax.random.split(key, max(len(self._lora_keys), 1))
    for k, sub in zip(self._lora_keys, keys):
      din, dout = self._pretrained_top[k].shape
      r = self.cfg.lora_rank
      params[f"lora/{k}/a"] = jax.random.normal(sub, (din, r), jnp.float32) / jnp.sqrt(din)
      params[f"lora/{k}/b"] = jnp.zeros((r, dout), jnp.float32)
    if self.cfg.lexical:
      params["mix/dense"] = jnp.ones((), jnp.float32)
      params["mix/lex"] = jnp.full((), self.cfg.lexical_weight, jnp.float32)
    return params

  def trainable_pattern(self) -> str:
    """Parameters the outer loop updates (the top layers' base weights only if train_top)."""
    return r"^(head|lora|mix)/" if not self.cfg.train_top else r"^(top|head|lora|mix)/"

  def _top_tree(self, params: P.Params) -> dict:
    flat = {k[len("top/"):]: v for k, v in params.items() if k.startswith("top/")}
    if self._lora_keys:
      scale = self.cfg.lora_alpha / self.cfg.lora_rank
      for k in self._lora_keys:
        flat[k] = flat[k] + scale * (params[f"lora/{k}/a"] @ params[f"lora/{k}/b"])
    return P.unflatten(flat, self._paths)

  def embed(self, params: P.Params, hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """(..., L, H) cached lower hidden states -> (..., H) unit-norm embeddings."""
    lead = hidden.shape[:-2]
    h = hidden.reshape(-1, *hidden.shape[-2:])
    m = mask.reshape(-1, mask.shape[-1])
    out = nnx.merge(self._graphdef, self._top_tree(params))(h, m)
    return out.reshape(*lead, -1)

  def query_repr(self, params: P.Params, emb: jax.Array) -> jax.Array:
    if self.cfg.head:
      emb = emb @ params["head/w"] + params["head/b"]
    return _normalize(emb)

  def tool_repr(self, params: P.Params, hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """(N, L, H) tool documents -> (N, H) class representations."""
    if self.cfg.proto_head and "proto/w" in params:
      return _normalize(params["proto/w"])
    return self.embed(params, hidden, mask)

  def logits(self, params: P.Params, q_hidden, q_mask, tools: jax.Array,
             lex: jax.Array | None = None) -> jax.Array:
    """Queries (B, L, H) against class representations (N, H) -> (B, N) logits; ``lex`` (B, N)
    is the queries' lexical feature against the N tools (needed iff ``cfg.lexical``)."""
    q = self.query_repr(params, self.embed(params, q_hidden, q_mask))
    return self.mix(params, q @ tools.T, lex) / self.cfg.temperature

  def mix(self, params: P.Params, dense: jax.Array, lex: jax.Array | None) -> jax.Array:
    """The score before the temperature: ``dense`` (cosines) as they are, or for the hybrid
    scorer ``mix/dense * dense + mix/lex * lex``."""
    if not self.cfg.lexical:
      return dense
    if lex is None:
      raise ValueError("scorer.lexical=True but the stream has no 'lex' feature: build the "
                       "feature cache with features.text_cache(..., lexical=True)")
    return params["mix/dense"] * dense + params["mix/lex"] * lex
