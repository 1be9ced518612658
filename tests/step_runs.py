"""k training steps of the paper's model, as the GPU suite runs them, and the yardstick it compares two
runs' weights with: how far apart a 5 % change of the learning rates puts them (on CUDA by default;
``device="cpu"`` runs the eager step, which tests/test_step_tolerance.py uses to check the yardstick)."""
import torch

from sleeplab.model import SleepLM
from sleeplab.presets import PAPER_RULE110, preset
from sleeplab.sleep import draw_n_sleep
from sleeplab.tasks import rule110
from sleeplab.train import WarmupConstant, build_optimizers, make_step

TASK = rule110.Config(t=4)    # T = 100, L = 24: the paper's layout; t only changes the labels
BATCH = 32                    # small: the shapes of every window are the paper's, the step is quick
WARMUP = 2                    # the graph bakes the rate from here on (fast.py); steps before run eagerly
RATE_CHANGE = 1.05            # the yardstick's change of both learning rates


def paper_model(n_sleep: int = 4, device: str = "cuda", **options) -> SleepLM:
    torch.manual_seed(0)
    cfg = preset("sleep", vocab_size=len(rule110.vocab(TASK)), **{**PAPER_RULE110, "n_sleep": n_sleep, **options})
    return SleepLM(cfg).to(device)


def batch(i: int, device: str = "cuda", size: int = BATCH):
    """Batch i of a run, drawn like training's: a generator seeded by the step, the train split."""
    return rule110.make_batch(TASK, size, torch.Generator(device).manual_seed(i), split="train")


def train_steps(model, fast: bool, precision: str, steps: int, n_ramp_steps: int = 0, rate: float = 1.0,
                size: int = BATCH):
    """-> (loss of every step, weights after the last), trained as ``sleeplab train`` would (with ``fast``:
    capturable AdamW and the CUDA-graph step, which compiles the blocks; eager otherwise), at ``rate``
    times the paper's Muon rate and the first grid's AdamW rate."""
    opts = build_optimizers(model, muon_lr=2e-3 * rate, adam_lr=1e-3 * rate, capturable=fast)
    step = make_step(model, opts, WarmupConstant(WARMUP), 1.0, precision, fast=fast)
    losses = []
    for i in range(steps):
        # a replayed graph returns the same loss buffer every step: read it before the next replay
        losses.append(float(step(batch(i, model.device.type, size), draw_n_sleep(model.config, 0, i, n_ramp_steps), i)))
    step.release()
    return torch.tensor(losses), weights(model)


def perturb(model, eps: float, seed: int = 1):
    """``model`` with every weight multiplied by 1 + eps x noise: a rounding-level difference when eps is
    near float32's precision, as reordered sums make them."""
    noise = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + eps * torch.randn(p.shape, generator=noise).to(p.device))
    return model


def weights(model) -> dict:
    return {k: v.detach().float().clone() for k, v in model.state_dict().items()}


def relative_gap(a: dict, b: dict, start: dict) -> float:
    """||a - b|| / ||b - start|| over all weights: 0 for identical runs, ~1 when a's updates are unrelated
    to b's (a lost optimiser state, another batch)."""
    gap = sum(((a[k] - b[k]) ** 2).sum() for k in start)
    moved = sum(((b[k] - start[k]) ** 2).sum() for k in start)
    return float((gap / moved).sqrt())


def loss_gap(losses, reference) -> float:
    """The largest relative difference of a step's loss from ``reference``'s, over the steps of two runs."""
    return float(((losses - reference).abs() / reference.abs()).max())


def rate_change_gaps(eager_losses, eager: dict, start: dict, precision: str, steps: int, n_ramp_steps: int = 0,
                     device: str = "cuda", size: int = BATCH, **options) -> tuple[float, float]:
    """How far from the eager run (``eager_losses``, weights ``eager``) an eager run with both learning
    rates 5 % higher ends: (largest relative loss difference, relative gap of the weights), the smallest
    difference we call a bug. Rounding alone moves two runs apart too: Muon orthogonalises in bf16, so
    any change in a gradient can flip the bf16 rounding of an update element, and training carries that
    forward. ``python benchmarks/step_noise.py`` measures both on the CPU (the paper model at N = 4,
    batch 32, 10 steps): a perturbation of the weights by 1e-7 to 1e-5 of their size left them 1.2-1.5 %
    of their movement apart and the losses within 2.1e-5, 5 % higher rates 9.4 % and 2.0e-2. That is
    the fp32 yardstick; one of 1e-3 (a bf16 rounding) gave 7.0 % and 5.2e-4, so bf16 runs need another
    (``tests/gpu/test_gpu_step.py``)."""
    losses, changed = train_steps(paper_model(device=device, **options), False, precision, steps, n_ramp_steps,
                                  rate=RATE_CHANGE, size=size)
    return loss_gap(losses, eager_losses), relative_gap(changed, eager, start)
