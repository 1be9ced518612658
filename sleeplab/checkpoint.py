"""The file format of checkpoints (to resume a run) and compact exports (to ship a trained model): one
self-checking format, read here without any training code (saving a run lives in ``sleeplab.train``).

A file is three parts::

    b"SLEEPLAB\\n"                 magic: anything else is not a sleeplab file
    {"format": 1, ...}\\n          one JSON header line: format, kind, sha256, payload size, manifest
    payload                        torch.save of the tensors (weights; optimiser states for a checkpoint)

The manifest holds everything a reader needs besides tensors: train, model and task configs, the step
(which is the whole data-stream state, see ``sleeplab/train/config.py``), tokens, wall time, last metrics and the code
version. No RNG state is stored because training draws none from global generators: data and N come
from seeds derived from (seed, step). The sha256 covers the manifest and the payload, so a flipped byte
anywhere is caught; a short payload is reported as truncation; a newer format is refused, never guessed.
Writes go to a temporary file that is renamed into place, so a run killed mid-save keeps its last good
checkpoint.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

from .model import SleepLMConfig
from .tasks import make_task_config

FORMAT = 1
MAGIC = b"SLEEPLAB\n"
KINDS = ("checkpoint", "export")
EXPORT_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """sleeplab's version, plus the git commit (and whether the tree had changes) when available.

    ``$SLEEPLAB_COMMIT``, when set, names the commit instead (``dirty`` then None: unknown): a copy of
    the code on another machine may have no git directory, or one older than its files (a device
    machine's copy of the working tree once recorded the session's first commit, "dirty")."""
    import sleeplab  # at call time: sleeplab/__init__ imports this module before defining __version__
    if os.environ.get("SLEEPLAB_COMMIT"):
        return {"version": sleeplab.__version__, "commit": os.environ["SLEEPLAB_COMMIT"], "dirty": None}
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--", str(here)],
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"version": sleeplab.__version__, "commit": commit, "dirty": dirty}


def _digest(manifest: dict, payload: bytes) -> str:
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical + payload).hexdigest()


def write(path, kind: str, manifest: dict, tensors: dict, format: int = FORMAT) -> Path:
    """Write one file atomically. ``format`` is a parameter only so tests can forge a future file."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not known; allowed: {KINDS}")
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    payload = buffer.getvalue()
    header = {"format": format, "kind": kind, "sha256": _digest(manifest, payload),
              "payload_bytes": len(payload), "manifest": manifest}
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give the path of the file to write, e.g. {path / 'model.sleeplab'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC + json.dumps(header).encode() + b"\n" + payload)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # nothing half-written is left behind
    return path


def read(path, with_tensors: bool = True) -> tuple[dict, dict | None]:
    """(header, tensors), after checking magic, format, size and checksum; ValueError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with open(path, "rb") as f:
        if f.readline() != MAGIC:
            raise ValueError(f"{path} is not a sleeplab checkpoint (it does not start with {MAGIC!r})")
        line = f.readline()
        try:
            header = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{path} is truncated or damaged: its header is not valid JSON") from None
        if not line.endswith(b"\n") or not isinstance(header, dict):
            raise ValueError(f"{path} is truncated or damaged: its header line is incomplete")
        missing = sorted({"format", "kind", "sha256", "payload_bytes", "manifest"} - set(header))
        if missing:
            raise ValueError(f"{path} is damaged: its header lacks {missing}")
        if not isinstance(header.get("format"), int) or header["format"] > FORMAT:
            raise ValueError(f"{path} has format {header.get('format')!r}, newer than this sleeplab reads "
                             f"(format {FORMAT}): upgrade sleeplab to load it")
        payload = f.read()
    if len(payload) != header["payload_bytes"]:
        raise ValueError(f"{path} is truncated: its payload has {len(payload)} of "
                         f"{header['payload_bytes']} bytes (was the run killed while copying it?)")
    if _digest(header["manifest"], payload) != header["sha256"]:
        raise ValueError(f"{path} is corrupted: its sha256 does not match the recorded {header['sha256'][:12]}…")
    if not with_tensors:
        return header, None
    return header, torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def read_manifest(path) -> dict:
    """The manifest alone (still checksum-verified): configs, step, metrics, code version."""
    return read(path, with_tensors=False)[0]["manifest"]


@dataclass
class Checkpoint:
    kind: str                      # "checkpoint" (resumable) or "export" (weights only)
    manifest: dict
    train_config: dict             # as saved; sleeplab.train.checkpoint.load_run makes it a TrainConfig
    model_config: SleepLMConfig
    task_config: object            # the task's Config dataclass
    model_state: dict
    optimizer_states: list | None  # None in an export
    step: int


def load_checkpoint(path) -> Checkpoint:
    header, tensors = read(path)
    manifest = header["manifest"]
    try:  # a config from another version of the code fails here, naming the field
        model_config = SleepLMConfig.from_dict(manifest["model_config"])
        task_config = make_task_config(manifest["task"], manifest["task_config"])
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"{path} does not match this version of sleeplab: {err}") from None
    return Checkpoint(header["kind"], manifest, manifest["train_config"], model_config, task_config,
                      tensors["model"], tensors.get("optimizers"), manifest["step"])


def export(src, dst, dtype: str = "bf16") -> Path:
    """A compact copy of a checkpoint for ``data/``: weights in ``dtype`` plus the manifest, no optimiser."""
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported for exports; allowed: {sorted(EXPORT_DTYPES)}")
    ckpt = load_checkpoint(src)
    weights = {k: v.to(EXPORT_DTYPES[dtype]) if v.is_floating_point() else v for k, v in ckpt.model_state.items()}
    manifest = {**ckpt.manifest, "weights_dtype": dtype, "source_sha256": read(src, False)[0]["sha256"]}
    return write(dst, "export", manifest, {"model": weights})
