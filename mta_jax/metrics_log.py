"""Scalar metrics to JSONL, CSV and TensorBoard event files, with no TensorFlow.

    writer = MetricWriter(workdir, resume_step=0)
    writer.write(step, {"outer/loss": 0.7, "val/sd_acc": 0.91})
    writer.close()

- ``metrics.jsonl``: one JSON object a call (``step``, ``wall_time`` and the scalars);
- ``metrics.csv``: the same in long format (``step,wall_time,name,value``), which stays valid
  when different calls log different names;
- ``events.out.tfevents.*``: TensorBoard's record format (length, masked CRC-32C, a serialised
  ``Event`` protobuf with ``simple_value`` summaries), written by hand: a few dozen lines instead
  of a TensorFlow or tensorboardX dependency. ``read_events`` reads them back (tests, reports).

A resumed run passes ``resume_step``: rows logged after that step by the interrupted run are
dropped from the JSONL and CSV, since the resumed run logs those steps again.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import socket
import struct
import time
from typing import Iterator, Mapping

JSONL, CSV = "metrics.jsonl", "metrics.csv"


# ---------------------------------------------------------------------------- tfevents format

def _crc32c_table() -> list[int]:
  table = []
  for i in range(256):
    c = i
    for _ in range(8):
      c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
  return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli), the checksum of TFRecord framing."""
  c = 0xFFFFFFFF
  for b in data:
    c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
  return c ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  c = crc32c(data)
  return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
  out = bytearray()
  n &= (1 << 64) - 1  # protobuf int64: two's complement for negatives
  while True:
    b = n & 0x7F
    n >>= 7
    out.append(b | (0x80 if n else 0))
    if not n:
      return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: int, scalars: Mapping[str, float] | None = None,
           file_version: str | None = None) -> bytes:
  """A serialised ``tensorflow.Event``: wall_time=1 (double), step=2, file_version=3, summary=5."""
  out = _varint(1 << 3 | 1) + struct.pack("<d", wall_time) + _varint(2 << 3) + _varint(step)
  if file_version is not None:
    out += _field_bytes(3, file_version.encode())
  if scalars:
    summary = b"".join(
        _field_bytes(1, _field_bytes(1, tag.encode()) + _varint(2 << 3 | 5) +
                     struct.pack("<f", float(v)))
        for tag, v in scalars.items())
    out += _field_bytes(5, summary)
  return out


def _record(data: bytes) -> bytes:
  length = struct.pack("<Q", len(data))
  return (length + struct.pack("<I", _masked_crc(length)) + data +
          struct.pack("<I", _masked_crc(data)))


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
  shift = n = 0
  while True:
    b = buf[i]
    i += 1
    n |= (b & 0x7F) << shift
    shift += 7
    if not b & 0x80:
      return n, i


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
  i = 0
  while i < len(buf):
    key, i = _read_varint(buf, i)
    num, wire = key >> 3, key & 7
    if wire == 0:
      v, i = _read_varint(buf, i)
    elif wire == 1:
      v, i = buf[i:i + 8], i + 8
    elif wire == 5:
      v, i = buf[i:i + 4], i + 4
    elif wire == 2:
      n, i = _read_varint(buf, i)
      v, i = buf[i:i + n], i + n
    else:
      raise ValueError(f"unsupported protobuf wire type {wire}")
    yield num, wire, v


def read_events(path: str | os.PathLike) -> list[tuple[int, str, float]]:
  """(step, tag, value) of every scalar in an event file; checks every CRC on the way."""
  data = pathlib.Path(path).read_bytes()
  out, i = [], 0
  while i < len(data):
    (n,) = struct.unpack_from("<Q", data, i)
    if struct.unpack_from("<I", data, i + 8)[0] != _masked_crc(data[i:i + 8]):
      raise ValueError(f"{path}: bad length CRC at byte {i}")
    payload = data[i + 12:i + 12 + n]
    if struct.unpack_from("<I", data, i + 12 + n)[0] != _masked_crc(payload):
      raise ValueError(f"{path}: bad data CRC at byte {i}")
    i += 16 + n
    step = 0
    for num, _, v in _fields(payload):
      if num == 2:
        step = v
      elif num == 5:
        for _, _, value in _fields(v):
          tag, val = "", 0.0
          for vn, _, vv in _fields(value):
            if vn == 1:
              tag = vv.decode()
            elif vn == 2:
              val = struct.unpack("<f", vv)[0]
          out.append((step, tag, val))
  return out


# ---------------------------------------------------------------------------- writer

def _truncate_after(path: pathlib.Path, step: int, is_csv: bool) -> None:
  """Drops rows whose step is larger than ``step`` (an interrupted run's lost tail)."""
  if not path.exists():
    return
  lines = path.read_text("utf-8").splitlines(keepends=True)
  keep = lines[:1] if is_csv else []
  for line in lines[1:] if is_csv else lines:
    try:
      s = int(line.split(",", 1)[0]) if is_csv else int(json.loads(line)["step"])
    except (ValueError, KeyError, json.JSONDecodeError):
      continue  # a half-written last line of a killed run
    if s <= step:
      keep.append(line)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text("".join(keep), "utf-8")
  os.replace(tmp, path)


class MetricWriter:
  """Appends scalars to ``metrics.jsonl``, ``metrics.csv`` and a TensorBoard event file."""

  def __init__(self, workdir: str | os.PathLike, resume_step: int = 0):
    self.dir = pathlib.Path(workdir)
    self.dir.mkdir(parents=True, exist_ok=True)
    _truncate_after(self.dir / JSONL, resume_step, is_csv=False)
    _truncate_after(self.dir / CSV, resume_step, is_csv=True)
    new_csv = not (self.dir / CSV).exists()
    self._jsonl = open(self.dir / JSONL, "a", encoding="utf-8")
    self._csv_file = open(self.dir / CSV, "a", encoding="utf-8", newline="")
    self._csv = csv.writer(self._csv_file)
    if new_csv:
      self._csv.writerow(["step", "wall_time", "name", "value"])
    tb = self.dir / "tensorboard"
    tb.mkdir(exist_ok=True)
    now = time.time()
    self._events = open(tb / f"events.out.tfevents.{int(now)}.{socket.gethostname()}."
                        f"{os.getpid()}.{resume_step}", "ab")
    self._events.write(_record(_event(now, resume_step, file_version="brain.Event:2")))

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    """Logs one row of scalars at ``step`` (values are converted to float)."""
    now = time.time()
    vals = {k: float(v) for k, v in scalars.items()}
    self._jsonl.write(json.dumps({"step": int(step), "wall_time": round(now, 3), **vals}) + "\n")
    for k, v in vals.items():
      self._csv.writerow([int(step), f"{now:.3f}", k, repr(v)])
    self._events.write(_record(_event(now, int(step), vals)))
    self.flush()

  def flush(self) -> None:
    for f in (self._jsonl, self._csv_file, self._events):
      f.flush()

  def close(self) -> None:
    for f in (self._jsonl, self._csv_file, self._events):
      f.close()


def read_jsonl(workdir: str | os.PathLike) -> list[dict]:
  """The rows of a run's ``metrics.jsonl`` (empty list if none)."""
  path = pathlib.Path(workdir) / JSONL
  if not path.exists():
    return []
  return [json.loads(l) for l in path.read_text("utf-8").splitlines() if l.strip()]
