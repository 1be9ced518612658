"""What a training run is, and everything that follows from its config alone.

A run is fully described by :class:`TrainConfig`. From it follow the task, the model config (vocab,
window and positions come from the task), the number of steps, and the data stream:

    batch i  = make_batch(task_config, B, Generator(device).manual_seed(derive_seed(seed, "data", i)))
    N of i   = drawn from Generator().manual_seed(derive_seed(seed, "n_sleep", i))   (variable-N only)

So the data order depends only on (seed, step) and never on the model: runs that differ only in N see
exactly the same batches (the paper's fairness rule, §2.5), and resuming a run needs only the step count.
The held-out set is ``eval_size`` examples of ``sleeplab.tasks.held_out``: the task's "eval" split from
one fixed seed, generated on the CPU, so every run and every machine is scored on the same items.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace

import torch

from ..model import SleepLMConfig, upgrade_fields
from ..presets import PRESETS, preset
from ..seeds import derive_seed
from ..tasks import get_task, make_task_config
from ..tasks.base import Batch

DEFAULT_TOKENS = "40M"   # the paper's Fig. 2a budget, used when neither tokens nor steps is given
PRECISIONS = ("bf16", "fp32")
STRATEGIES = ("auto", "ddp")   # DDP is what the fast step's CUDA graph can record (distributed.py)
_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9}
_SEQ_LEN: dict[tuple[str, str], int] = {}   # (task, repr of its config) -> tokens per example


def parse_count(value: int | str) -> int:
    """``"40k"`` -> 40_000, ``"500M"`` -> 500_000_000, ``"2.5B"`` -> 2_500_000_000; ints pass through."""
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kKmMbB]?)\s*", str(value))
        if not match:
            raise ValueError(f"count {value!r} is not understood; use an integer or a number with "
                             "k, M or B, e.g. '40k', '500M', '2.5B'")
        count = round(float(match.group(1)) * _SUFFIX[match.group(2).lower()])
    if count < 1:
        raise ValueError(f"count {value!r} must be at least 1")
    return count


@dataclass
class TrainConfig:
    # what to learn
    task: str = "rule110"
    task_args: dict = field(default_factory=dict)    # overrides of the task's Config, e.g. {"t": 16}
    preset: str = "sleep"                            # see sleeplab.presets.PRESETS
    model_args: dict = field(default_factory=dict)   # SleepLMConfig overrides, e.g. {"n_sleep": 2}
    # how long: give tokens ("500M") or steps, not both; neither means DEFAULT_TOKENS
    batch_size: int = 512                            # paper, Rule 110
    tokens: int | str | None = None
    steps: int | None = None
    # optimiser (paper §4.3: Muon 2e-3 tuned on N = 1, AdamW fixed at 5e-5; the rest is not reported)
    muon_lr: float = 2e-3
    adam_lr: float = 5e-5
    muon_lr_n_power: float = 0.0                     # Muon's rate is muon_lr * N ** -power (0: the paper's)
    n_ramp_steps: int = 0                            # N curriculum: N rises from 1 to its target over these steps
    weight_decay: float = 0.0
    warmup_steps: int = 100                          # linear warm-up, then constant
    grad_clip: float | None = 1.0
    seed: int = 0                                    # data order and initial weights
    nudge: int = 0                                   # k > 0: initial weights x (1 + 1e-6 noise k), a rerun
                                                     # that differs from the seed's run by rounding only
    # bookkeeping
    eval_every: int = 100                            # steps between held-out evaluations
    eval_size: int = 1024                            # held-out examples (fixed seed, "eval" split)
    save_every: int | None = None                    # steps between checkpoints; None: eval_every
    export_at: list = field(default_factory=list)    # budgets ("1B") at which to keep a compact export
    device: str = "auto"                             # "auto", "cpu", "cuda", "cuda:1"
    devices: int | str = 1                           # processes, data-parallel (DDP); "auto": every GPU
    strategy: str = "auto"                           # Lightning strategy when devices > 1: "auto" = "ddp"
    threads: int | None = None                       # CPU threads while training; None: torch's choice
    precision: str = "bf16"                          # bf16 autocast on CUDA; CPU always runs fp32
    out: str | None = None                           # run directory; None writes nothing (notebooks)
    fast: bool = False                               # CUDA-graph step on CUDA (sleeplab.train.fast)
    progress: bool = False                           # progress bar (never when $CI is set)

    def __post_init__(self):
        self.task_args, self.model_args = dict(self.task_args), upgrade_fields(self.model_args)
        for name in ("batch_size", "warmup_steps", "n_ramp_steps", "eval_every", "eval_size", "save_every",
                     "steps", "threads"):
            value = getattr(self, name)
            minimum = 0 if name in ("warmup_steps", "n_ramp_steps") else 1
            if value is None and name in ("save_every", "steps", "threads"):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        for name in ("seed", "nudge"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.tokens is not None and self.steps is not None:
            raise ValueError(f"give tokens ({self.tokens!r}) or steps ({self.steps!r}), not both")
        if self.tokens is not None:
            parse_count(self.tokens)
        if not isinstance(self.export_at, list):
            raise ValueError(f"export_at must be a list of token budgets like ['1B', '2B'], got {self.export_at!r}")
        for budget in self.export_at:
            parse_count(budget)
        for name in ("muon_lr", "adam_lr", "weight_decay", "muon_lr_n_power"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.grad_clip is not None and not (isinstance(self.grad_clip, (int, float)) and
                                               not isinstance(self.grad_clip, bool) and
                                               math.isfinite(self.grad_clip) and self.grad_clip > 0):
            raise ValueError(f"grad_clip must be None (off) or a finite number > 0, got {self.grad_clip!r}")
        if self.device != "auto":
            try:
                kind = torch.device(self.device).type
            except (RuntimeError, TypeError):
                kind = None
            if kind not in ("cpu", "cuda"):
                raise ValueError(f"device {self.device!r} is not known; allowed: 'auto', 'cpu', 'cuda', 'cuda:N'")
        if self.devices != "auto" and (not isinstance(self.devices, int) or isinstance(self.devices, bool)
                                        or self.devices < 1):
            raise ValueError(f"devices must be a positive integer or 'auto', got {self.devices!r}")
        if isinstance(self.devices, int) and self.batch_size % self.devices:
            raise ValueError(f"batch_size {self.batch_size} does not split evenly over devices={self.devices}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r} is not supported; allowed: {STRATEGIES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not known; allowed: {PRECISIONS}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset {self.preset!r} is not known; allowed: {sorted(PRESETS)}")
        self.task_config()  # fails now, naming the bad task or dial, rather than mid-run

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"train config has fields this version of sleeplab does not know: {unknown}")
        return cls(**d)

    # --- what follows from the config -------------------------------------------------------
    def task_module(self):
        return get_task(self.task)

    def task_config(self):
        return make_task_config(self.task, self.task_args)

    def seq_len(self) -> int:
        """Tokens per example, read off one generated example (tasks share one layout per config) the
        first time a task config asks: model_config, tokens_per_step and total_steps all need it."""
        task_config = self.task_config()
        key = (self.task, repr(task_config))
        if key not in _SEQ_LEN:
            _SEQ_LEN[key] = self.task_module().make_batch(task_config, 1, torch.Generator().manual_seed(0)).seq_len
        return _SEQ_LEN[key]

    def model_config(self) -> SleepLMConfig:
        task, task_cfg = self.task_module(), self.task_config()
        from_task = dict(vocab_size=len(task.vocab(task_cfg)), window=task.default_window(task_cfg),
                         max_positions=self.seq_len())
        return preset(self.preset, **{**from_task, **self.model_args})

    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len()

    def total_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        budget = parse_count(self.tokens if self.tokens is not None else DEFAULT_TOKENS)
        return math.ceil(budget / self.tokens_per_step())

    def effective_muon_lr(self) -> float:
        """Muon's base rate for this run's N: deeper unrolls take larger steps per update of a weight
        that every pass reuses, so a rate tuned at N = 1 may be too large at N = 4."""
        return self.muon_lr * self.model_config().n_sleep ** -self.muon_lr_n_power

    def export_steps(self) -> dict[int, str]:
        """{step: label}: the first step whose tokens reach each ``export_at`` budget."""
        return {math.ceil(parse_count(b) / self.tokens_per_step()): str(b) for b in self.export_at}

    def checkpoint_every(self) -> int:
        return self.save_every or self.eval_every


def train_batch(cfg: TrainConfig, step: int, device: torch.device, task_config=None) -> Batch:
    """Batch number ``step`` of the run's stream: a pure function of (task config, B, seed, step)."""
    generator = torch.Generator(device).manual_seed(derive_seed(cfg.seed, "data", step))
    task_config = task_config if task_config is not None else cfg.task_config()
    return cfg.task_module().make_batch(task_config, cfg.batch_size, generator, split="train").to(device)


# The CPU recipe notebooks and the acceptance test use: Rule 110 at depth t = 2 with two 12-cell states
# (T = 26, windows of 12), a 4-block hybrid at d = 32, learned to >= 95 % held-out exact accuracy
# (chance 25 %, majority 29 %) on one CPU thread. Seed 0 sits near 0.53 (the oldest state not yet
# learned) and leaves that plateau or not by rounding: on an AVX2 CPU at step ~550 (1.0 by 900), on an
# AVX-512 one not in 800 steps, and runs of seed 0 nudged by a millionth ended at 0.53, 0.98, 0.99 and
# 1.0 (python -m sleeplab.repro.rerun_spread). Seeds 1-4 passed 0.95 by step 200-300 on the AVX-512 CPU.
# Fewer GDN heads, or d = 32 with 2 blocks, sometimes never learn the oldest state: GDN's initial
# forget gates can all be fast, and more heads make a slow one likely.
# One thread: for matrices this small, handing each op to a second thread costs more than the op, and
# on a busy machine a descheduled thread stalls every op (measured 5-8x slower with two).
TINY_RULE110 = TrainConfig(
    task="rule110", task_args={"t": 2, "n_states": 2, "width": 12}, preset="hybrid",
    model_args={"d_model": 32, "n_heads": 4},
    batch_size=64, steps=800, muon_lr=5e-3, adam_lr=3e-3, warmup_steps=20,
    eval_every=50, eval_size=512, device="cpu", threads=1, precision="fp32")


def recipe(base: TrainConfig = TINY_RULE110, **changes) -> TrainConfig:
    """A copy of a recipe with some fields changed: ``recipe(out="runs/a", seed=1)``."""
    fresh = {"task_args": dict(base.task_args), "model_args": dict(base.model_args)}  # never share dicts
    return replace(base, **{**fresh, **changes})
