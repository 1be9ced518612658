"""The yardstick of the GPU suite's graph-against-eager tests (``step_runs.rate_change_gap``: half of what a
5 % change of the learning rates does to the weights), checked on the CPU where the eager step runs: a
rounding-level difference between two runs stays well inside it."""
from step_runs import paper_model, perturb, rate_change_gap, relative_gap, train_steps, weights

STEPS, SIZE, N = 10, 16, 2   # the GPU tests' 10 steps; a smaller batch and N keep this at seconds


def test_a_rounding_level_difference_stays_inside_half_a_five_percent_rate_change():
    start = weights(paper_model(N, device="cpu"))
    _, eager = train_steps(paper_model(N, device="cpu"), False, "fp32", STEPS, size=SIZE)
    _, rounded = train_steps(perturb(paper_model(N, device="cpu"), 1e-7), False, "fp32", STEPS, size=SIZE)
    bound = rate_change_gap(eager, start, "fp32", STEPS, device="cpu", size=SIZE, n_sleep=N) / 2
    gap = relative_gap(rounded, eager, start)
    assert 0 < gap < bound, (gap, bound)   # 0 would mean the perturbation never reached the weights
