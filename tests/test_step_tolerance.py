"""The yardstick of the GPU suite's graph-against-eager tests (``step_runs.rate_change_gaps``: half of what a
5 % change of the learning rates does to the weights and the losses), checked on the CPU where the eager step runs: a
rounding-level difference between two runs stays well inside it."""
from step_runs import loss_gap, paper_model, perturb, rate_change_gaps, relative_gap, train_steps, weights

STEPS, SIZE, N = 10, 16, 2   # the GPU tests' 10 steps; a smaller batch and N keep this at seconds


def test_a_rounding_level_difference_stays_inside_half_a_five_percent_rate_change():
    start = weights(paper_model(N, device="cpu"))
    eager_losses, eager = train_steps(paper_model(N, device="cpu"), False, "fp32", STEPS, size=SIZE)
    losses, rounded = train_steps(perturb(paper_model(N, device="cpu"), 1e-7), False, "fp32", STEPS, size=SIZE)
    rate_loss, rate_weights = rate_change_gaps(eager_losses, eager, start, "fp32", STEPS, device="cpu", size=SIZE,
                                               n_sleep=N)
    gap, loss_off = relative_gap(rounded, eager, start), loss_gap(losses, eager_losses)
    assert 0 < gap < rate_weights / 2, (gap, rate_weights)  # 0: the perturbation never reached the weights
    assert loss_off < rate_loss / 2, (loss_off, rate_loss)
