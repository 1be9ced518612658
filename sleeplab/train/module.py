"""Training a SleepLM on a task: a LightningModule, a quiet Trainer, and ``train(cfg)`` tying them up.

    result = train(TINY_RULE110)                     # live on a CPU, ~1 minute
    result = train(cfg, on_eval=plot.add_point)      # a callback gets every eval record (live plots)

Lightning runs the loop (device placement, progress bar); the optimisation itself is manual, so a
step object (``step.py``) does forward, backward and update and can be swapped for a CUDA-graph step.
The loader yields step *indices*; the batch of step i is generated from (seed, i) on the device
(``config.py``), so a resumed run sees exactly the batches the uninterrupted run would have seen.

Every ``eval_every`` steps (and at steps 0 and last) the model is scored on the held-out set at its
configured N. A record holds step, tokens, loss (mean training loss since the previous record), exact,
per_label, the task's breakdowns (e.g. per_state), n_sleep, passes (h RMS and token cosine after each
sleep pass, ``api.pass_statistics``) and wall_s (summed over resumes).

The run directory (``cfg.out``) holds ``config.json``, ``metrics.jsonl`` (one record a line),
``checkpoint.sleeplab`` (the latest, written every ``save_every`` steps, at the end, and when the run
is stopped with SIGTERM, so a stopped run loses no finished step) and ``done.json`` once the budget
is spent. With ``devices > 1`` (``distributed.py``) every process trains and the first one evaluates
and writes; SIGTERM then stops every process together at the next record.
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ..api import evaluate, pass_statistics
from ..checkpoint import export
from ..device import cpu_threads, pick_device
from ..model import SleepLM
from ..seeds import derive_seed, nudge_weights
from ..sleep import draw_n_sleep
from ..tasks import held_out
from .checkpoint import CHECKPOINT, CONFIG, DONE, METRICS, load_run, read_metrics, save_checkpoint
from .config import TrainConfig, train_batch
from .distributed import EAGER_CALLS, ShardLoss, is_first_process, resolve_devices, trainer_args
from .loss import model_loss
from .optim import WarmupConstant, build_optimizers
from .step import make_step

# fields that may change when a run is resumed: they set the budget and the bookkeeping, not the updates
# (devices too: every process makes the whole global batch, so the data stream does not depend on it)
RESUMABLE = {"tokens", "steps", "eval_every", "save_every", "export_at", "device", "devices", "strategy", "threads",
             "progress", "fast", "out"}


def make_trainer(progress: bool = False, **kw) -> L.Trainer:
    """A Trainer that prints nothing but our own output (Lightning's banners and tips are noise in a log); a bar only if asked, never in CI."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # GPU/TPU lines, tips, "fit stopped"
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")      # torch 2.13 FutureWarning via lightning
    defaults = dict(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                    enable_model_summary=False, enable_progress_bar=progress and not os.environ.get("CI"))
    return L.Trainer(**{**defaults, **kw})


@dataclass
class RunResult:
    model: SleepLM
    train_config: TrainConfig
    metrics: list[dict] = field(default_factory=list)   # every eval record, oldest first
    out: Path | None = None
    stopped: bool = False                                # SIGTERM ended it early (checkpoint written)
    step: int = 0                                        # steps finished
    devices: int = 1                                     # processes it trained on

    @property
    def final(self) -> dict:
        return self.metrics[-1] if self.metrics else {}


class SleepModule(L.LightningModule):
    def __init__(self, cfg: TrainConfig, on_eval: Callable[[dict], None] | None = None, resume: bool = False):
        super().__init__()
        self.automatic_optimization = False  # the step object owns backward and the optimisers
        self.cfg, self.on_eval = cfg, on_eval
        self.run_device = pick_device(None if cfg.device == "auto" else cfg.device)
        self.task_config = cfg.task_config()
        with torch.random.fork_rng(devices=[]):  # initial weights from the run's seed, caller's RNG untouched
            torch.manual_seed(derive_seed(cfg.seed, "init"))
            self.model = SleepLM(cfg.model_config())
        if cfg.nudge:
            nudge_weights(self.model, derive_seed(cfg.seed, "nudge", cfg.nudge))
        self.total, self.tokens_per_step = cfg.total_steps(), cfg.tokens_per_step()
        self.exports = cfg.export_steps()  # step -> budget label of a compact export to keep
        self.start, self.wall_before, self.metrics, self.optimizer_states = 0, 0.0, [], None
        self.loss_sum, self.loss_count = None, 0  # training loss since the last record, summed on device
        self.reached = 0  # steps done so far; the run is finished when it reaches self.total
        self.saved = 0    # step of the last checkpoint written
        self.stop_asked = False  # under DDP: SIGTERM reached this process; acted on at the next record
        self.step_fn = None  # built in configure_optimizers, once the model is on its device
        self.out = Path(cfg.out) if cfg.out else None
        if self.out is not None and self.out.exists() and not self.out.is_dir():
            raise ValueError(f"out {str(self.out)!r} is an existing file; a run needs a directory there")
        if self.out is not None and (self.out / CHECKPOINT).exists():
            if not resume:
                raise ValueError(f"{self.out} already holds a run: resume it (resume=True, --resume) "
                                 "or choose another out directory")
            self._restore(self.out / CHECKPOINT)

    def _restore(self, path: Path) -> None:
        ckpt = load_run(path)
        saved, now = (json.loads(json.dumps(c.to_dict())) for c in (ckpt.train_config, self.cfg))  # tuples as lists
        changed = sorted(k for k in now if k not in RESUMABLE and now[k] != saved[k])
        if changed:
            raise ValueError(f"cannot resume {path}: {changed} differ from the checkpoint's "
                             f"({ {k: saved[k] for k in changed} }); only {sorted(RESUMABLE)} may change")
        # a valid checksum says the file is intact, not that this code builds the same model or task
        for what, saved_config, derived in (("model_config", ckpt.model_config.to_dict(), self.cfg.model_config().to_dict()),
                                           ("task_config", asdict(ckpt.task_config), asdict(self.task_config))):
            saved_config, derived = (json.loads(json.dumps(c)) for c in (saved_config, derived))
            fields_changed = sorted(k for k in set(saved_config) | set(derived) if saved_config.get(k) != derived.get(k))
            if fields_changed:
                raise ValueError(f"cannot resume {path}: its {what} differs from what this code derives in "
                                 f"{fields_changed} (saved { {k: saved_config.get(k) for k in fields_changed} }, "
                                 f"now { {k: derived.get(k) for k in fields_changed} })")
        if ckpt.manifest["data_device"] != self.run_device.type:
            raise ValueError(f"cannot resume {path} on {self.run_device.type}: its batches were drawn by a "
                             f"{ckpt.manifest['data_device']} generator, so the data stream would change")
        if ckpt.step > self.total:
            raise ValueError(f"{path} is at step {ckpt.step}, past this budget of {self.total} steps")
        self.model.load_state_dict(ckpt.model_state)
        self.start = self.reached = self.saved = ckpt.step
        self.wall_before = ckpt.manifest["wall_s"]
        # so the next record's loss is exact; checkpoints written before 26 Nov 2026 lack it
        total, self.loss_count = ckpt.manifest.get("loss_since_record", [0.0, 0])
        self.loss_sum = torch.tensor(total) if self.loss_count else None
        self.optimizer_states = ckpt.optimizer_states
        self.metrics = [r for r in read_metrics(self.out / METRICS) if r["step"] <= self.start]  # drop the lost tail

    # --- Lightning hooks ----------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        # each process learns its own device here (cuda:<local rank> under DDP)
        self.run_device = self.trainer.strategy.root_device
        self.eval_set = held_out(self.cfg.task, self.task_config, self.cfg.eval_size).to(self.run_device)

    def configure_optimizers(self):
        # called after Lightning moved the model to its device, so optimiser state lands there too
        cfg = self.cfg
        fast = cfg.fast and self.run_device.type == "cuda"
        self.opts = build_optimizers(self.model, cfg.effective_muon_lr(), cfg.adam_lr, cfg.weight_decay, capturable=fast)
        if self.optimizer_states is not None:
            for opt, state in zip(self.opts, self.optimizer_states, strict=True):
                opt.load_state_dict(state)
        world = self.trainer.world_size
        loss_fn = ShardLoss(model_loss, self.trainer.global_rank, world) if world > 1 else model_loss
        self.step_fn = make_step(self.model, self.opts, WarmupConstant(cfg.warmup_steps), cfg.grad_clip,
                                 cfg.precision, cfg.fast, loss_fn=loss_fn,
                                 backward=self.manual_backward if world > 1 else torch.Tensor.backward,
                                 eager_calls=EAGER_CALLS if world > 1 else 2)
        self.batches = None  # the fast path makes batch i+1 on a side stream while step i runs
        if fast:
            from .fast import Prefetcher
            self.batches = Prefetcher(lambda i: train_batch(cfg, i, self.run_device, self.task_config),
                                      self.run_device)
        return self.opts

    def train_dataloader(self):
        return range(self.start, self.total)  # step indices; batches are made in training_step

    def on_train_start(self):
        if self.trainer.world_size > 1:
            # Lightning's own SIGTERM handling is not safe under DDP: its handler broadcasts from inside
            # the signal handler, and each process raises when its own flag is set, so the processes can
            # stop at different steps or meet in mismatched collectives (seen: a CPU DDP run that hung
            # for good after SIGTERM). Here a signal only marks the process; at the next record, where the
            # processes sync anyway, they agree (any process marked: all stop) and stop at the same step.
            signal.signal(signal.SIGTERM, self._ask_stop)
        self.clock = time.perf_counter()
        if self.start == 0:
            self.record(0)  # the untrained model: the curve starts at chance

    def training_step(self, index, _):
        if self.trainer.received_sigterm:  # one process: stop between steps (DDP: at records, below)
            raise SIGTERMException()
        cfg, step = self.cfg, int(index)
        if self.batches is not None:
            batch = self.batches.get(step)
        else:
            batch = train_batch(cfg, step, self.run_device, self.task_config)
        loss = self.step_fn(batch, draw_n_sleep(self.model.config, cfg.seed, step, cfg.n_ramp_steps), step)
        if self.batches is not None:
            self.batches.prefetch(step + 1)  # the same (seed, step) stream; an unused last batch is harmless
        # no host sync per step; a copy starts the sum: a graphed step's loss is a buffer its next replay overwrites
        self.loss_sum = loss.detach().clone() if self.loss_sum is None else self.loss_sum + loss
        self.loss_count += 1
        if self.trainer.progress_bar_callback is not None:
            self.log("loss", loss, prog_bar=True)
        done = self.reached = step + 1
        if done % cfg.eval_every == 0 or done == self.total:
            self.record(done)
            if self.trainer.world_size > 1 and self._any_process_asked_stop() and done < self.total:
                raise SIGTERMException()  # every process raises here, after the same step
        milestone = self.exports.get(done)
        if self.out is not None and (done % cfg.checkpoint_every() == 0 or done == self.total or milestone):
            self.save(done)
            if milestone and self.trainer.is_global_zero:  # milestones of a long run, kept compact
                export(self.out / CHECKPOINT, self.out / f"export-{milestone}.sleeplab")

    def _ask_stop(self, signum, frame) -> None:
        self.stop_asked = True

    def _any_process_asked_stop(self) -> bool:
        flag = torch.tensor(float(self.stop_asked), device=self.trainer.strategy.root_device)
        return bool(self.trainer.strategy.reduce(flag, reduce_op="sum") > 0)

    # --- records and checkpoints -------------------------------------------------------------
    def wall_s(self) -> float:
        return self.wall_before + time.perf_counter() - self.clock

    def record(self, step: int) -> dict | None:
        """Score the model and append a record; under DDP every process calls this (the loss is
        averaged over them: shard losses average to the global batch's loss), the first one scores."""
        loss = None
        if self.loss_count:
            loss = self.trainer.strategy.reduce(self.loss_sum / self.loss_count, reduce_op="mean").item()
            # checked here, where the loop syncs anyway, not every step: a NaN never recovers
            if not math.isfinite(loss):
                raise ValueError(f"the training loss is {loss} over steps {step - self.loss_count}-{step - 1}: "
                                 "training diverged; lower --muon-lr / --adam-lr or set --grad-clip")
        self.step_fn.check()
        self.loss_sum, self.loss_count = None, 0
        if not self.trainer.is_global_zero:
            return None
        scores = evaluate(self.model, self.eval_set, chunk_size=self.cfg.batch_size)
        scores.pop("examples")
        passes = pass_statistics(self.model, self.eval_set)
        rec = {"step": step, "tokens": step * self.tokens_per_step, "loss": loss, **scores,
               "passes": {k: [round(v, 4) for v in vs] for k, vs in passes.items()},
               "wall_s": round(self.wall_s(), 3)}  # scores: exact, per_label, n_sleep and the task's extras
        self.metrics.append(rec)
        if self.out is not None:
            with open(self.out / METRICS, "a") as f:
                f.write(json.dumps(rec, allow_nan=False) + "\n")
        if self.on_eval is not None:
            self.on_eval(rec)
        return rec

    def save(self, step: int) -> None:
        """Every process calls this at the same steps; the first one writes."""
        self.saved = step
        partial = 0.0  # training loss summed since the last record, averaged over processes like a record's
        if self.loss_count:
            partial = self.trainer.strategy.reduce(self.loss_sum, reduce_op="mean").item()
        if not self.trainer.is_global_zero:
            return
        save_checkpoint(self.out / CHECKPOINT, self.cfg, self.model, self.opts, self.task_config, step,
                        tokens=step * self.tokens_per_step, wall_s=self.wall_s(), data_device=self.run_device.type,
                        metrics=self.metrics[-1] if self.metrics else None,
                        loss_since_record=[partial, self.loss_count])

    def prepare_out(self) -> None:
        """config.json, and metrics.jsonl as of the restored step (records past it are re-made)."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / CONFIG).write_text(json.dumps(self.cfg.to_dict(), indent=2) + "\n")
        (self.out / METRICS).write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in self.metrics))
        (self.out / DONE).unlink(missing_ok=True)  # a longer budget re-opens a finished run


def train(cfg: TrainConfig, *, resume: bool = False, on_eval: Callable[[dict], None] | None = None,
          **trainer_kw) -> RunResult:
    """Train (or with ``resume`` continue) the run ``cfg`` describes; extra kwargs go to the Trainer."""
    with cpu_threads(cfg.threads):
        return _train(cfg, resume, on_eval, trainer_kw)


def _train(cfg, resume, on_eval, trainer_kw) -> RunResult:
    module = SleepModule(cfg, on_eval=on_eval, resume=resume)
    devices = resolve_devices(cfg.devices, module.run_device, cfg.batch_size)
    first = is_first_process()  # DDP's other processes run this script too
    if module.out is not None and first:
        module.prepare_out()
    stopped = False
    if module.start < module.total:
        trainer = make_trainer(cfg.progress, **{**trainer_args(module.run_device, devices, cfg.fast), **trainer_kw})
        try:
            trainer.fit(module)
        except SIGTERMException:  # raised between steps: the weights are those of the last finished step
            stopped = True
            if module.out is not None and module.reached > module.saved:
                module.save(module.reached)
        finally:
            if module.step_fn is not None:
                module.step_fn.release()
    if module.out is not None and module.reached == module.total and first:
        (module.out / DONE).write_text(json.dumps({"step": module.total, "final": module.metrics[-1]}) + "\n")
    module.model.eval()
    return RunResult(module.model, cfg, module.metrics, module.out, stopped, module.reached, devices)
