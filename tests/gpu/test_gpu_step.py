"""The CUDA-graph step trains like the eager step, the recipe options capture, bf16 tracks fp32.

Why tolerances and not equality: the graph step compiles the blocks (inductor fuses and reorders float
sums) and uses capturable AdamW (its bias correction on the device); both change rounding, not the
update. Muon orthogonalises in bf16 in both steps, so a rounding difference in a gradient can flip a bf16
rounding of the update (2^-8 of an element's step), and training carries such differences forward. So
the weights are compared with a yardstick measured in the same test. In fp32 it is half of what a 5 %
change of the learning rates does (``step_runs.rate_change_gaps``). Under bf16 autocast that is too fine:
the fused kernels keep fp32 intermediates where the eager ops round every output to bf16, a difference
of every op at every step. On the CPU a single bf16-sized nudge of the weights (1e-3) already moves
training 0.070 of its movement, against 0.093 for a 5 % rate change (``benchmarks/step_noise.py``), and
on an H200 all seven bf16 comparisons against the old yardstick failed in one run (their tracebacks
were lost). So in bf16 the graph step may also be as far from the eager one as twice the distance that bf16
autocast itself puts between two eager runs (bf16 against fp32), and that distance must be small
enough for a broken step (a lost optimiser state, another batch: ~1) to stand out. The losses are held
to the same pair of yardsticks in bf16 (half a 5 % rate change's largest loss difference, or twice bf16
against fp32). The second alone, one sample of a chaotic difference, was too thin: on an H100 the
Triton op mode's graph step was 1.71e-3 off where bf16 against fp32 had been 0.69e-3, while its weights
were half their bound from the eager ones; a 5 % rate change moves the losses 2.0e-2 (CPU, fp32).
"""
import pytest
import torch

from step_runs import batch, loss_gap, paper_model, rate_change_gaps, relative_gap, train_steps, weights
from sleeplab import device as dev
from sleeplab.train import model_loss

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="the GPU suite needs a CUDA device")

STEPS = 10  # WARMUP eager steps, 2 eager warm-up calls, the capture, then replays
FP32_LOSS_RTOL = 1e-3  # fp32 sees only reordered sums and bf16 Muon roundings


def assert_graph_trains_like_eager(record, precision, steps, n_ramp_steps=0, graph_options=None, **options):
    """``record(name, value)`` (pytest's ``record_property``): the gaps and their bounds, which the suite's
    log shows for passes too, so a failure can be read against the margins of earlier runs."""
    start = weights(paper_model(**options))
    eager_losses, eager = train_steps(paper_model(**options), False, precision, steps, n_ramp_steps)
    graph_losses, graph = train_steps(paper_model(**(graph_options or options)), True, precision, steps, n_ramp_steps)
    assert torch.isfinite(graph_losses).all()
    loss_off = loss_gap(graph_losses, eager_losses)
    gap = relative_gap(graph, eager, start)
    rate_loss, rate_weights = rate_change_gaps(eager_losses, eager, start, precision, steps, n_ramp_steps, **options)
    loss_bound, bound = FP32_LOSS_RTOL, rate_weights / 2
    if precision == "bf16":   # bf16's own rounding, where it is the larger of the two
        fp32_losses, fp32 = train_steps(paper_model(**options), False, "fp32", steps, n_ramp_steps)
        loss_bound = max(rate_loss / 2, 2 * loss_gap(fp32_losses, eager_losses))
        bound = max(bound, 2 * relative_gap(fp32, eager, start))
        assert bound < 0.5, f"bf16 alone moves training {bound / 2:.3f} of its movement: too coarse to see a bug"
    for name, value in (("loss_off", loss_off), ("loss_bound", loss_bound), ("weights_gap", gap), ("weights_bound", bound)):
        record(name, float(value))
    assert loss_off <= loss_bound, f"losses off by {loss_off:.2e} (bound {loss_bound:.2e}): {graph_losses} {eager_losses}"
    assert gap < bound, f"weights off by {gap:.4f} of their movement (bound {bound:.4f})"
    assert eager_losses[-1] < eager_losses[0]  # the steps trained: the comparison is not of no-ops


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_graph_step_equals_eager_step(precision, record_property):
    assert_graph_trains_like_eager(record_property, precision, STEPS)


@pytest.mark.parametrize("options, n_ramp_steps", [
    (dict(pass_norm="rms"), 0), (dict(inject="scaled"), 0), (dict(inject="adapter"), 0),
    (dict(grad_passes=2), 0),
    # N = 1 for steps 0-7, then 2: both N's graphs are captured and replayed within 14 steps
    (dict(n_sleep=2), 8)], ids=["pass_norm-rms", "inject-scaled", "inject-adapter", "grad_passes-2", "n_ramp_steps-8"])
def test_recipe_options_capture_in_a_cuda_graph(options, n_ramp_steps, record_property):
    assert_graph_trains_like_eager(record_property, "bf16", 14, n_ramp_steps, **options)


def test_bf16_matches_fp32_within_tolerance():
    """bf16 keeps 8 mantissa bits (relative rounding 2^-9); over 4 blocks x 4 passes x 5 windows the
    errors add up to about a percent of the logits' size: we allow 3 % of their norm, and 2 % of the loss."""
    model = paper_model()
    b = batch(0)
    with dev.autocast(model.device, False):
        loss32 = model_loss(model, b, 4)
    with dev.autocast(model.device, True):
        loss16 = model_loss(model, b, 4)
    assert torch.allclose(loss16.float(), loss32, rtol=2e-2), (float(loss16), float(loss32))
    model.eval()
    with torch.no_grad():
        logits32 = model(b.tokens, b.loss_mask)[b.loss_mask]
        with dev.autocast(model.device, True):
            logits16 = model(b.tokens, b.loss_mask)[b.loss_mask].float()
    assert float((logits16 - logits32).norm() / logits32.norm()) < 3e-2


def test_triton_op_mode_graph_step_trains_like_the_eager_chunk_step(record_property):
    """op_mode="triton" in the fast step (compiled blocks around the kernels' custom ops, one CUDA graph)
    against the eager chunk path: the same model's updates within bf16 graph-vs-eager rounding."""
    assert_graph_trains_like_eager(record_property, "bf16", STEPS, graph_options=dict(op_mode="triton"))
