"""Notebook 04's figures: ΔS is taken against the S each pass started from, the sliders' updater moves
the ring and redraws ΔS, and accuracies are computed once per (checkpoint, N) and then reused."""
import torch

from sleeplab.lab import sleep_figures as sf
from sleeplab.repro import results


def fake_trace(W=3, N=2, G=2, B=1, H=1, K=4, V=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    S = torch.randn(W, N, G, B, H, K, V, generator=g)
    change = torch.rand(W, N, G, generator=g) + 0.1
    change[0, 0] = float("nan")
    return {"S": S, "s_change": change}


def test_delta_s_is_relative_to_the_state_the_pass_started_from():
    tr = fake_trace()
    S = tr["S"][:, :, -1, 0, 0]
    assert torch.equal(sf.delta_s(tr, 0, 1), S[0, 0])                 # window 0 starts from zero
    assert torch.equal(sf.delta_s(tr, 1, 1), S[1, 0] - S[0, -1])      # from the previous window's last S
    assert torch.equal(sf.delta_s(tr, 1, 2), S[1, 1] - S[1, 0])


def test_show_pass_rings_the_chosen_n_and_redraws_delta_s():
    points = {8: {n: {"exact": 0.5 + 0.1 * i, "se": 0.03, "n": 256} for i, n in enumerate((1, 2))}}
    traces = {1: fake_trace(N=1, seed=1), 2: fake_trace(N=2, seed=2)}
    fig = sf.sleep_figure(points, traces, {8: 0.1}, gpu={8: {1: 0.55, 2: 0.66}})
    sf.show_pass(fig, points, traces, 1, 2, 2)                        # pass 2 of N = 1 clips to pass 1
    z1 = fig.data[-1].z
    assert fig.layout.title.text.startswith("N = 1 sleep passes, t = 8: 50.0% ± 3.0%")
    assert fig.layout.annotations[1].text.startswith("ΔS in pass 1 of 1, sleep 2")
    sf.show_pass(fig, points, traces, 2, 2, 2)
    assert fig.data[-2].x == (2,) and fig.data[-2].y == (0.6,)
    assert fig.data[-1].z != z1
    assert fig.data[0].error_y.array == (0.03, 0.03)
    assert all(ax.title.text for ax in (fig.layout.xaxis, fig.layout.yaxis, fig.layout.xaxis2, fig.layout.yaxis2))
    assert fig.data[-1].colorbar.title.text == "ΔS entry"


def test_change_table_leaves_the_empty_start_blank_and_shares_one_scale():
    fig = sf.change_table_figure({"a": fake_trace(seed=3), "b": fake_trace(seed=4)})
    assert fig.data[0].text[0][0] == "" and fig.data[0].zmax == fig.data[1].zmax
    assert [d.showscale for d in fig.data] == [False, True]


def test_longer_sleep_figure_has_error_bars_and_the_input_blind_level():
    fig = sf.longer_sleep_figure({1: {"exact": 0.9, "se": 0.02}, 8: {"exact": 0.8, "se": 0.03}}, 0.1, (1, 4))
    assert fig.data[0].error_y.array == (0.02, 0.03)
    assert "input-blind" in fig.layout.annotations[0].text


def test_accuracy_cache_computes_each_checkpoint_and_n_once():
    name = "rule110-t8-n1-41M"
    cache = sf.AccuracyCache({name: results.load_model(name, device="cpu")}, examples=8)
    first, again = cache(name, 1), cache(name, 1)
    assert not first["cached"] and again["cached"]
    assert first["exact"] == again["exact"] and first["n"] == 8
    assert first["se"] == results.standard_error(first["exact"], 8)
