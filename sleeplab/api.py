"""The two verbs on trained models: ``load`` a checkpoint, ``evaluate`` it on a task batch.

    model = sleeplab.load("data/checkpoints/rule110-t8-n4-41M.sleeplab")
    batch = sleeplab.tasks.held_out(model.task, model.task_config, 256)   # the run's fixed held-out set
    sleeplab.evaluate(model, batch, n_sleep=8)     # {"exact": ..., "per_label": ..., "n_sleep": 8, ...}

``evaluate`` is the one evaluation of sleeplab: ``sleeplab eval``, the training loop's held-out
evaluations, the shipped checkpoints' manifest and the notebooks all score through it. The per-pass
diagnostics ``token_rms`` and ``token_cosine`` are defined here once: training logs them
(``pass_statistics``) and ``lab.probe.pass_trace`` reports them under the same names.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from .device import pick_device
from .model import SleepLM
from .checkpoint import load_checkpoint
from .sleep import resolve_n_sleep, rms, sleep_forward, window_plan
from .tasks import get_task
from .tasks.base import Batch, score


def load(path, device: str | torch.device | None = "cpu", op_mode: str | None = None) -> SleepLM:
    """A ready model in eval mode from a full checkpoint or a compact export (bf16 weights come back fp32).
    ``op_mode`` ("chunk", "recurrent", "triton") replaces the saved one: it picks how the rule is
    computed, not what the weights are, so a model trained with "chunk" runs with "triton".

    The model carries its provenance: ``model.train_config`` (the run's TrainConfig as a dict; the
    training code is not needed to load a model), ``model.task`` (task name),
    ``model.task_config`` (the task's Config) and ``model.manifest`` (step, tokens, metrics, code version).
    ``device=None`` picks CUDA when present.
    """
    device = pick_device(device)  # a bad device is refused before the file is read
    ckpt = load_checkpoint(path)
    config = ckpt.model_config if op_mode is None else replace(ckpt.model_config, op_mode=op_mode)
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: keep the caller's RNG as is
        model = SleepLM(config)
    model.load_state_dict(ckpt.model_state)
    model.to(device).eval()
    model.train_config, model.task = ckpt.train_config, ckpt.manifest["task"]
    model.task_config, model.manifest = ckpt.task_config, ckpt.manifest
    return model


def evaluate(model: SleepLM, batch: Batch, n_sleep: int | tuple[int, ...] | None = None,
             chunk_size: int | None = None) -> dict:
    """Teacher-forced accuracy of ``model`` on ``batch`` with Algorithm 1 at N = ``n_sleep``.

    The prediction at a scored position is the argmax of the logits there; ``exact`` is the fraction of
    examples with every scored position right, ``per_label`` the fraction of scored positions right
    (``sleeplab.tasks.base.score``). A batch that names its task in ``meta["task"]`` is scored by that
    task's ``exact_match``, which adds task-specific breakdowns (per state, per hop count, ...).
    ``n_sleep=None`` uses the model's configured N, a tuple one N per sleeping window;
    ``chunk_size`` bounds how many examples run at once.
    The model's train/eval mode is left as it was.
    """
    # a per-window tuple of N's is checked against the batch's windows by sleep_forward
    n = n_sleep if isinstance(n_sleep, tuple) else resolve_n_sleep(model.config, False, n_sleep)
    size = chunk_size or batch.batch_size
    plan = window_plan(batch.loss_mask, batch.seq_len, model.config.window)  # one layout per batch
    was_training = model.training
    model.eval()
    preds = []
    with torch.no_grad():
        for start in range(0, batch.batch_size, size):
            tokens = batch.tokens[start:start + size].to(model.device)
            mask = batch.loss_mask[start:start + size].to(model.device)
            preds.append(sleep_forward(model, tokens, mask, n_sleep=n, plan=plan).argmax(-1))
    model.train(was_training)
    scorer = get_task(batch.meta["task"]).exact_match if "task" in batch.meta else score
    # scored on the CPU, where every task keeps its meta tensors (per hop, per state, ...)
    return {**scorer(torch.cat(preds).cpu(), batch.to("cpu")), "n_sleep": n, "examples": batch.batch_size}


def token_rms(h: torch.Tensor) -> torch.Tensor:
    """The scale of each window's features, reported as ``h_rms``: [B, T, d] -> [B], the RMS of each
    token's d features (:func:`sleeplab.sleep.rms`), then the plain mean over the window's T tokens.
    Per token first, not one RMS of the whole tensor: that is what training has logged since the
    first per-pass records (``data/results/curves.json``)."""
    return rms(h.float()).squeeze(-1).mean(-1)


def token_cosine(h: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity between different tokens of each window: [B, T, d] -> [B]. Near 1, the
    tokens' features have collapsed onto one direction and little token information is left to write."""
    u = torch.nn.functional.normalize(h.float(), dim=-1)
    T = u.shape[1]
    return ((u @ u.transpose(1, 2)).sum((1, 2)) - T) / max(T * (T - 1), 1)


def pass_statistics(model: SleepLM, batch: Batch, n_sleep: int | None = None, examples: int = 64) -> dict:
    """Per sleep pass, averaged over the sleeping windows and the first ``examples`` examples: the
    scale of the features h a pass leaves (``h_rms``, :func:`token_rms`) and the mean cosine between
    different tokens' h (``token_cos``, :func:`token_cosine`). Growth of the first and a rise of the
    second pass after pass are the signs of a residual stream that drowns what each pass writes."""
    n = resolve_n_sleep(model.config, False, n_sleep)
    size, cos, windows = torch.zeros(n), torch.zeros(n), torch.zeros(n)

    def on_pass(window, p, states, h):
        size[p] += token_rms(h).mean().item()
        cos[p] += token_cosine(h).mean().item()
        windows[p] += 1

    was_training = model.training
    model.eval()
    with torch.no_grad():
        sleep_forward(model, batch.tokens[:examples].to(model.device), batch.loss_mask[:examples].to(model.device),
                      n_sleep=n, on_pass=on_pass)
    model.train(was_training)
    windows.clamp_(min=1)  # a sequence with no sleeping window has nothing to average
    return {"h_rms": (size / windows).tolist(), "token_cos": (cos / windows).tolist()}
