"""Backbones: the pretrained MiniLM sentence encoder (Flax NNX), and the registry that names
them (``load_backbone(name)``)."""

from mta_jax.models.bert import BertConfig, BertEncoder, TopLayers, mean_pool, top_layers
from mta_jax.models.encoder import TextEncoder
from mta_jax.models.tokenizer import BUCKETS, Tokenizer, bucket_for
from mta_jax.models.weights import WeightsNotFoundError, load_minilm, minilm_dir
from mta_jax.models.registry import BACKBONES, DEFAULT as DEFAULT_BACKBONE
from mta_jax.models.registry import load as load_backbone
