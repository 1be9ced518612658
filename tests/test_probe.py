"""Invariants of the inside-sleep diagnostic: what the pass trace records, and what the probes can see."""
import math

import pytest
import torch

import sleeplab
from sleeplab.api import pass_statistics
from sleeplab.lab import probe
from sleeplab.model import SleepLM
from sleeplab.presets import preset
from sleeplab.repro.results import checkpoint_path
from sleeplab.streaming import StreamingRunner
from sleeplab.tasks import rule110
from sleeplab.tasks import held_out

TASK = rule110.Config(t=2, n_states=2, width=12)   # two 12-token windows, then 2 query tokens: T = 26
N = 3


def make(seed=0):
    torch.manual_seed(seed)
    cfg = preset("sleep", vocab_size=len(rule110.vocab(TASK)), d_model=16, n_heads=2, window=12,
                 max_positions=26, n_sleep=N)
    return SleepLM(cfg).eval()


def tokens(B=4):
    return held_out("rule110", TASK, B).tokens


def test_trace_has_one_entry_per_window_and_pass():
    trace = probe.pass_trace(make(), tokens(), N)
    assert trace["h_rms"].shape == trace["token_cos"].shape == (2, N)
    assert trace["s_change"].shape == trace["s_norm"].shape == (2, N, 2)    # two GDN blocks
    assert trace["h"].shape == (2, N, 4, 12, 16)
    assert trace["S"].shape == (2, N, 2, 4, 2, 8, 8)                        # [W, N, G, B, H, K, V]
    per_token = trace["h"].square().mean(-1).sqrt()                        # [W, N, B, L]
    assert torch.allclose(trace["h_rms"], per_token.mean((2, 3)))
    assert not torch.allclose(trace["h"][0, 0], trace["h"][0, 1])           # passes really differ


def test_trace_reports_the_pass_statistics_training_logs():
    # one definition of h_rms and token_cos: a window's trace, averaged over windows, is training's record
    model, batch = make(), held_out("rule110", TASK, 4)
    trace = probe.pass_trace(model, batch.tokens, N)
    logged = pass_statistics(model, batch, n_sleep=N)
    for key in ("h_rms", "token_cos"):
        assert torch.allclose(trace[key].mean(0), torch.tensor(logged[key]), rtol=1e-5)


def test_first_pass_change_of_s_is_relative_to_incoming_s():
    model, x = make(), tokens(B=1)
    trace = probe.pass_trace(model, x, N)
    runner = StreamingRunner(model, record=True)                            # an independent record of S
    runner.feed(x[0, :24])
    S = [record["states"] for record in runner.history]                     # per pass: [S per GDN block]
    for g in range(2):
        assert math.isnan(trace["s_change"][0, 0, g])                       # S arrives empty: no reference
        incoming, first = S[N - 1][g], S[N][g]                              # last pass of window 0, first of 1
        expected = ((first - incoming).norm() / incoming.norm()).item()
        assert abs(trace["s_change"][1, 0, g].item() - expected) < 1e-5
        within = ((S[N + 1][g] - first).norm() / first.norm()).item()       # the second pass: against the first
        assert abs(trace["s_change"][1, 1, g].item() - within) < 1e-5


def test_probe_targets_are_the_ca_rollout_of_the_window_tokens():
    batch = held_out("rule110", TASK, 8)
    cells = probe.cells_after(batch.meta["state_int"], TASK.t, TASK.width)  # [B, W, t+1, width]
    assert torch.equal(cells[:, :, 0], batch.tokens[:, :24].view(8, 2, 12))
    assert torch.equal(cells[:, :, TASK.t, 0], batch.meta["labels"])        # cell 0 after t steps: the label


def test_ridge_probe_recovers_a_linear_rule_and_not_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 20, generator=g)
    y = torch.stack([x @ torch.randn(20, generator=g) > 0, torch.rand(600, generator=g) > 0.5], 1)
    hits = probe.ridge_hits(x[:400], y[:400], x[400:], y[400:]).double().mean(0)
    assert hits[0] > 0.95 and abs(hits[1] - 0.5) < 0.1


def test_probe_decodes_cells_from_a_model_that_copies_them():
    model = make()
    with torch.no_grad():                  # blocks write nothing to the stream: h = embedding of the token
        for block in model.blocks:
            (block.mixer.o_proj if block.kind == "gdn" else block.mixer.out).weight.zero_()
            block.mlp.down.weight.zero_()
    table = probe.probe_cells(model, 128, N, task_config=TASK)
    assert table["h"].shape == table["S"].shape == (N, TASK.t + 1)
    assert (table["h"][:, 0] > 0.99).all()                                  # k = 0: the token itself
    assert (table["h"][:, 1:] < table["majority"][1:] + 0.1).all()          # later steps need the neighbours


def test_mlp_probe_reads_an_xor_that_no_linear_probe_can_and_not_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 20, generator=g)
    y = torch.stack([(x[:, 0] > 0) ^ (x[:, 1] > 0), torch.rand(3000, generator=g) > 0.5], 1)
    mlp = probe.mlp_hits(x[:2000], y[:2000], x[2000:], y[2000:], steps=2000).double().mean(0)
    linear = probe.ridge_hits(x[:2000], y[:2000], x[2000:], y[2000:]).double().mean(0)
    assert mlp[0] > 0.9 and abs(linear[0] - 0.5) < 0.06
    assert abs(mlp[1] - 0.5) < 0.06


def test_unknown_reader_is_refused_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="reader='tree'.*'linear', 'mlp'"):
        probe.probe_cells(make(), 16, N, task_config=TASK, reader="tree")


@pytest.mark.parametrize("reader", ["linear", "mlp"])
def test_probe_of_a_model_blind_to_its_input_sits_at_the_majority_baseline(reader):
    model = make()
    with torch.no_grad():
        model.tok_emb.weight.zero_()       # every example now looks the same to every block
    table = probe.probe_cells(model, 128, N, task_config=TASK, reader=reader)
    assert table["reader"] == reader
    for name in ("h", "S"):
        assert (table[name] - table["majority"]).abs().max() < 0.06



def test_probe_standard_error_is_that_of_a_mean_over_the_test_windows():
    model = make()
    with torch.no_grad():
        model.tok_emb.weight.zero_()       # S is the same for every window: the probe answers a constant
    table = probe.probe_cells(model, 128, N, task_config=TASK)
    windows = table["test_windows"]
    assert windows == 32 * 2                                                # a quarter of 128 examples, 2 windows
    assert table["h_se"].shape == table["S_se"].shape == (N, TASK.t + 1)
    # at k = 0 the cells are independent fair coins, so a constant answer scores binomially per window
    p = table["S"][:, 0]
    binomial = (p * (1 - p) / TASK.width / windows).sqrt()
    assert ((table["S_se"][:, 0] / binomial - 1).abs() < 0.4).all()
    assert (table["S_se"] <= 0.5 / windows ** 0.5).all()                    # a window's score lies in [0, 1]

def test_shipped_checkpoint_keeps_its_window_in_s_and_h():
    model = sleeplab.load(checkpoint_path("rule110-t8-n1-41M"))
    table = probe.probe_cells(model, 96)
    assert table["h"].shape == (1, model.task_config.t + 1)
    assert table["h"][0, 0] > 0.95 and table["S"][0, 0] > table["majority"][0] + 0.1
