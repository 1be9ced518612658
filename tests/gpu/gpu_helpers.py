"""What the GPU tests share: the paper's model at a small batch, k training steps of it, and how far
apart two runs' weights are measured against how far training moved them."""
import torch

from sleeplab.model import SleepLM
from sleeplab.presets import PAPER_RULE110, preset
from sleeplab.sleep import draw_n_sleep
from sleeplab.tasks import rule110
from sleeplab.train import WarmupConstant, build_optimizers, make_step

TASK = rule110.Config(t=4)    # T = 100, L = 24: the paper's layout; t only changes the labels
BATCH = 32                    # small: the shapes of every window are the paper's, the step is quick
WARMUP = 2                    # the graph bakes the rate from here on (fast.py); steps before run eagerly


def paper_model(n_sleep: int = 4, **options) -> SleepLM:
    torch.manual_seed(0)
    cfg = preset("sleep", vocab_size=len(rule110.vocab(TASK)), **{**PAPER_RULE110, "n_sleep": n_sleep, **options})
    return SleepLM(cfg).cuda()


def batch(i: int):
    """Batch i of a run, drawn like training's: a CUDA generator seeded by the step, the train split."""
    return rule110.make_batch(TASK, BATCH, torch.Generator("cuda").manual_seed(i), split="train")


def train_steps(model, fast: bool, precision: str, steps: int, n_ramp_steps: int = 0):
    """-> (loss of every step, weights after the last), trained as ``sleeplab train`` would (with ``fast``:
    capturable AdamW and the CUDA-graph step, which compiles the blocks; eager otherwise)."""
    opts = build_optimizers(model, muon_lr=2e-3, adam_lr=1e-3, capturable=fast)  # the paper's Muon rate
    step = make_step(model, opts, WarmupConstant(WARMUP), 1.0, precision, fast=fast)
    losses = []
    for i in range(steps):
        # a replayed graph returns the same loss buffer every step: read it before the next replay
        losses.append(float(step(batch(i), draw_n_sleep(model.config, 0, i, n_ramp_steps), i)))
    step.release()
    return torch.tensor(losses), weights(model)


def weights(model) -> dict:
    return {k: v.detach().float().clone() for k, v in model.state_dict().items()}


def relative_gap(a: dict, b: dict, start: dict) -> float:
    """||a - b|| / ||b - start|| over all weights: 0 for identical runs, ~1 when a's updates are unrelated
    to b's (a lost optimiser state, another batch), so a tolerance of 1e-2 separates rounding from bugs."""
    gap = sum(((a[k] - b[k]) ** 2).sum() for k in start)
    moved = sum(((b[k] - start[k]) ** 2).sum() for k in start)
    return float((gap / moved).sqrt())
