"""A disk cache of tool embeddings and of documentation-only adapted parameters.

Entries are files under ``root/<kind>/<2 hex>/<sha256>``, one per key. The key hashes everything
the value depends on (the encoder's weight and vocabulary files, the checkpoint's parameters and
configs, the window settings, and the exact text), so a changed input is a miss, never a stale
hit. Each file is ``MAGIC + sha256(payload) + payload``; an entry that is truncated, altered or
of another key is reported with a ``CacheWarning``, deleted and recomputed, never used. Writers
write a temporary file in the same folder and rename it over the entry (atomic on POSIX), so
concurrent writers of one key leave one complete entry, and a reader never sees half a file.
Entries are not fsynced: a crash that loses a write leaves a short or empty file, which the
checksum rejects.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import pathlib
import tempfile
import warnings
from typing import Iterable, Mapping

import numpy as np

MAGIC = b"MTAC\x00\x01\x00\x00"
_HEAD = len(MAGIC) + 32


class CacheWarning(UserWarning):
  """A cache entry could not be used (and is recomputed) or written."""


def default_dir() -> pathlib.Path:
  """``$MTA_JAX_CACHE`` or ``$XDG_CACHE_HOME/mta_jax`` (default ``~/.cache/mta_jax``)."""
  if os.environ.get("MTA_JAX_CACHE"):
    return pathlib.Path(os.environ["MTA_JAX_CACHE"])
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base) / "mta_jax"


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:  # pylint: disable=unused-argument
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      h.update(block)
  return h.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
  """sha256 of a file's bytes, computed once per process per (path, size, mtime)."""
  st = os.stat(path)
  return _file_digest(str(path), st.st_size, st.st_mtime_ns)


def digest(*parts) -> str:
  """sha256 of a JSON rendering of ``parts`` (strings, numbers, lists, dicts)."""
  return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False,
                                   default=str).encode()).hexdigest()


def params_digest(tree: Mapping[str, np.ndarray]) -> str:
  """sha256 of a flat dict of arrays: names, shapes, dtypes and bytes."""
  h = hashlib.sha256()
  for k in sorted(tree):
    a = np.ascontiguousarray(np.asarray(tree[k]))
    h.update(f"{k}|{a.shape}|{a.dtype}|".encode())
    h.update(a.tobytes())
  return h.hexdigest()


class DiskCache:
  """See the module docstring. ``kind`` is a folder (``"emb"``, ``"adapted"``)."""

  def __init__(self, root: str | os.PathLike):
    self.root = pathlib.Path(root)
    self.hits = self.misses = self.corrupt = 0

  def _path(self, kind: str, key: str) -> pathlib.Path:
    return self.root / kind / key[:2] / key

  # ------------------------------------------------------------------------- bytes

  def _read(self, kind: str, key: str) -> bytes | None:
    path = self._path(kind, key)
    try:
      blob = path.read_bytes()
    except FileNotFoundError:
      self.misses += 1
      return None
    except OSError as e:
      self._bad(path, f"unreadable ({e.strerror})")
      return None
    if len(blob) < _HEAD or blob[:len(MAGIC)] != MAGIC:
      self._bad(path, f"not a cache entry or cut short ({len(blob)} bytes)")
      return None
    payload = blob[_HEAD:]
    if hashlib.sha256(payload).digest() != blob[len(MAGIC):_HEAD]:
      self._bad(path, "checksum mismatch (partial or altered)")
      return None
    self.hits += 1
    return payload

  def _bad(self, path: pathlib.Path, why: str) -> None:
    self.corrupt += 1
    self.misses += 1
    warnings.warn(f"cache entry {path} is corrupt: {why}; recomputing it", CacheWarning,
                  stacklevel=4)
    try:
      path.unlink()
    except OSError:
      pass

  def _write(self, kind: str, key: str, payload: bytes) -> None:
    path = self._path(kind, key)
    tmp = None
    try:
      path.parent.mkdir(parents=True, exist_ok=True)
      fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
      with os.fdopen(fd, "wb") as f:
        f.write(MAGIC + hashlib.sha256(payload).digest() + payload)
      os.replace(tmp, path)
      tmp = None
    except OSError as e:
      warnings.warn(f"cannot write cache entry {path} ({e.strerror or e}); going on without it",
                    CacheWarning, stacklevel=4)
    finally:
      if tmp is not None:
        try:
          os.unlink(tmp)
        except OSError:
          pass

  # ------------------------------------------------------------------------- vectors

  def get_vectors(self, namespace: str, texts: Iterable[str], dim: int) -> dict[str, np.ndarray]:
    """{text: (dim,) float32} for the texts cached under ``namespace``."""
    out = {}
    for text in texts:
      key = digest(namespace, text)
      payload = self._read("emb", key)
      if payload is None:
        continue
      if len(payload) != 32 + 4 * dim or payload[:32] != bytes.fromhex(key):
        self._bad(self._path("emb", key), "wrong key or size")
        continue
      out[text] = np.frombuffer(payload[32:], np.float32).copy()
    return out

  def put_vectors(self, namespace: str, vectors: Mapping[str, np.ndarray]) -> None:
    for text, v in vectors.items():
      key = digest(namespace, text)
      self._write("emb", key, bytes.fromhex(key) + np.asarray(v, np.float32).tobytes())

  # ------------------------------------------------------------------------- array dicts

  def get_arrays(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
    payload = self._read(kind, key)
    if payload is None:
      return None
    try:
      if payload[:32] != bytes.fromhex(key):
        raise ValueError("wrong key")
      with np.load(io.BytesIO(payload[32:]), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
    except (ValueError, OSError, KeyError) as e:
      self._bad(self._path(kind, key), f"unreadable arrays ({e})")
      return None

  def put_arrays(self, kind: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    self._write(kind, key, bytes.fromhex(key) + buf.getvalue())
