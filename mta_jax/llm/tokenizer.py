"""SmolLM2's tokenizer and chat template, rebuilt from the GGUF metadata (no tokenizer.json).

The GGUF holds the vocabulary (``tokenizer.ggml.tokens``), the BPE merges and each token's type
(3 = control: ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` ...). SmolLM2's tokenizer is a
GPT-2 style byte-level BPE whose pre-tokenizer first splits every digit on its own
(``Digits(individual_digits=True)``); ``tokenizer.ggml.pre = "smollm"`` names exactly that.
The chat template (``tokenizer.chat_template``, a Jinja string) is ChatML with a default system
message; we render it by hand (no Jinja dependency) and take the default system message from it.
"""

from __future__ import annotations

import re
from typing import Sequence

CONTROL = 3  # llama.cpp's token type for control tokens
IM_START, IM_END = "<|im_start|>", "<|im_end|>"


class ChatTokenizer:
  """Byte-level BPE + ChatML rendering; ids agree with the GGUF vocabulary."""

  def __init__(self, meta: dict):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers  # pylint: disable=import-outside-toplevel
    if meta.get("tokenizer.ggml.model") != "gpt2":
      raise ValueError(f"expected a byte-level BPE (tokenizer.ggml.model='gpt2'), got "
                       f"{meta.get('tokenizer.ggml.model')!r}")
    tokens = list(meta["tokenizer.ggml.tokens"])
    types = list(meta["tokenizer.ggml.token_type"])
    merges = [tuple(m.split(" ")) for m in meta["tokenizer.ggml.merges"]]
    bad = [m for m in merges if len(m) != 2]
    if bad:
      raise ValueError(f"malformed BPE merges in the GGUF, e.g. {bad[:3]}")
    self._tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                                     fuse_unk=False, byte_fallback=False))
    self._tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    self._tok.decoder = decoders.ByteLevel()
    self.special = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty == CONTROL}
    self._tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in self.special])
    self.vocab_size = len(tokens)
    self.eos_id = int(meta.get("tokenizer.ggml.eos_token_id", self.special[IM_END]))
    self.pad_id = int(meta.get("tokenizer.ggml.padding_token_id", self.eos_id))
    # A chat turn ends with <|im_end|>; a raw document with <|endoftext|>: stop on either.
    self.stop_ids = tuple(sorted({self.special[IM_END], self.special["<|endoftext|>"]}))
    template = meta.get("tokenizer.chat_template", "")
    if IM_START not in template:
      raise ValueError("the GGUF chat template is not ChatML; render_chat does not support it")
    found = re.search(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", template, re.S)
    self.default_system = found.group(1) if found else None
    self.chat_template = template

  def encode(self, text: str) -> list[int]:
    """Token ids of ``text`` (special tokens written in the text are recognised; no BOS added)."""
    return self._tok.encode(text, add_special_tokens=False).ids

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    if isinstance(texts, str):
      raise TypeError("encode_batch takes a sequence of strings, not a single string")
    return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

  def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
    return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

  def render_chat(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
    """The GGUF's ChatML template: a default system turn unless the first message is one."""
    out = []
    if messages and messages[0]["role"] != "system" and self.default_system is not None:
      out.append(f"{IM_START}system\n{self.default_system}{IM_END}\n")
    for m in messages:
      out.append(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n")
    if add_generation_prompt:
      out.append(f"{IM_START}assistant\n")
    return "".join(out)

  def chat_ids(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> list[int]:
    return self.encode(self.render_chat(messages, add_generation_prompt))
