"""Invariants of the training-recipe options beyond the paper (pass norm, injection, truncation,
depth-scaled init, N curriculum, Muon rate per N) and of the per-pass diagnostics."""
import pytest
import torch

from sleeplab.api import pass_statistics, token_cosine
from sleeplab.model import SleepLM, SleepLMConfig
from sleeplab.presets import preset
from sleeplab.sleep import pass_input, ramped_n_sleep, rms, sleep_forward
from sleeplab.tasks.base import Batch
from sleeplab.sleep import draw_n_sleep
from sleeplab.train.config import TrainConfig

L, T, V = 8, 36, 11


def make(seed=0, **kw):
    torch.manual_seed(seed)
    return SleepLM(preset("sleep", vocab_size=V, d_model=32, n_heads=2, window=L, max_positions=64, **kw)).double()


def tokens_and_mask(B=3):
    tokens = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[:, -4:] = True
    return tokens, mask


def grown_features(model):
    e = model.embed(tokens_and_mask()[0][:, :L])
    return 40 * torch.randn_like(e), e  # h far above the embedding's scale, as after a few passes


def test_pass_norm_feeds_every_later_pass_at_the_embedding_scale():
    model = make(pass_norm="rms")
    h, e = grown_features(model)
    x = pass_input(model, h, e, rms(e), 2, 4)
    assert torch.allclose(rms(x), rms(e), rtol=1e-9)
    assert torch.equal(pass_input(model, h, e, rms(e), 0, 4), e)  # the first pass reads the embedding itself


@pytest.mark.parametrize("checkpointed", [False, True])
def test_every_later_pass_of_the_loop_reads_its_own_windows_embedding_scale(checkpointed, monkeypatch):
    # the loop measures rms(e) once per window: each window must get its own, on both sleep paths
    model = make(pass_norm="rms", n_sleep=3, checkpoint_windows=checkpointed)
    tokens, mask = tokens_and_mask()
    fed, run_blocks = [], model.run_blocks
    monkeypatch.setattr(model, "run_blocks", lambda h, *rest: fed.append(h) or run_blocks(h, *rest))
    sleep_forward(model, tokens, mask, n_sleep=3)
    sleeping = [(start, fed[3 * w:3 * w + 3]) for w, start in enumerate(range(0, T - L, L))]
    assert len(fed) == 3 * len(sleeping) + 1                               # then one prediction pass
    for start, passes in sleeping:
        e = model.embed(tokens[:, start:start + L], start)
        for x in passes[1:]:
            assert torch.allclose(rms(x), rms(e), rtol=1e-9)


def test_embedding_feed_gives_every_pass_the_window_embedding_and_still_carries_s():
    model = make(feed="embedding", n_sleep=3)
    h, e = grown_features(model)
    assert all(torch.equal(pass_input(model, h, e, rms(e), n, 3), e) for n in range(3))
    tokens, mask = tokens_and_mask()
    fed, run_blocks = [], model.run_blocks
    model.run_blocks = lambda x, *rest: fed.append(x) or run_blocks(x, *rest)
    sleep_forward(model, tokens, mask, n_sleep=3)
    assert len(fed) == 3 * 4 + 1 and all(torch.equal(fed[3 * w + n], fed[3 * w]) for w in range(4) for n in (1, 2))
    # S still crosses from pass to pass: three passes of the same window are not one
    with torch.no_grad():
        three, one = sleep_forward(model, tokens, mask, n_sleep=3), sleep_forward(model, tokens, mask, n_sleep=1)
    assert not torch.allclose(three, one)


def test_scaled_injection_adds_the_embedding_at_the_stream_scale():
    model = make(inject="scaled")
    h, e = grown_features(model)
    added = pass_input(model, h, e, rms(e), 1, 4) - h
    assert torch.allclose(rms(added), rms(h), rtol=1e-9)
    assert torch.allclose(torch.nn.functional.cosine_similarity(added, e, dim=-1),
                          torch.ones(e.shape[:-1], dtype=e.dtype))


def test_plain_add_injection_is_the_old_reinject_input():
    model = make(inject="add")
    h, e = grown_features(model)
    assert torch.equal(pass_input(model, h, e, rms(e), 1, 4), h + e)
    old = {k: v for k, v in SleepLMConfig().to_dict().items() if k != "inject"} | {"reinject_input": True}
    assert SleepLMConfig.from_dict(old).inject == "add"
    assert TrainConfig(model_args={"reinject_input": False}).model_args == {"inject": "none"}


def test_adapter_starts_as_the_scaled_sum_and_is_trained_by_muon():
    from sleeplab.train.optim import split_parameters
    adapter, scaled = make(inject="adapter"), make(inject="scaled")
    h, e = grown_features(adapter)
    assert torch.allclose(pass_input(adapter, h, e, rms(e), 1, 4), pass_input(scaled, h, e, rms(e), 1, 4), rtol=1e-12)
    assert any(p is adapter.adapter.weight for p in split_parameters(adapter)["muon"])


@pytest.mark.parametrize("option", [dict(pass_norm="rms"), dict(inject="scaled"), dict(inject="adapter"),
                                    dict(grad_passes=1)])
def test_options_leave_a_one_pass_model_unchanged(option):
    tokens, mask = tokens_and_mask()
    plain, changed = make(n_sleep=1), make(n_sleep=1, **option)
    changed.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        assert torch.equal(plain(tokens, mask), changed(tokens, mask))


@pytest.mark.parametrize("option", [dict(pass_norm="rms"), dict(inject="scaled")])
def test_options_change_what_a_deeper_sleep_computes(option):
    tokens, mask = tokens_and_mask()
    plain, changed = make(n_sleep=3), make(n_sleep=3, **option)
    with torch.no_grad():
        assert not torch.allclose(plain(tokens, mask)[:, -4:], changed(tokens, mask)[:, -4:])


def test_depth_init_scales_residual_outputs_by_blocks_times_passes():
    plain, deep = make(n_sleep=4), make(n_sleep=4, depth_init=True)
    for a, b in zip(plain.blocks, deep.blocks):
        for pa, pb in zip(a.residual_outputs(), b.residual_outputs()):
            assert torch.allclose(pb.weight, pa.weight * (2 * 4 * 4) ** -0.5)
        assert torch.equal(a.norm1.weight, b.norm1.weight) and torch.equal(a.mlp.up.weight, b.mlp.up.weight)


def test_n_curriculum_rises_from_one_to_the_target():
    assert [ramped_n_sleep(4, s, 100) for s in (0, 24, 25, 50, 75, 99, 100, 10**6)] == [1, 1, 1, 2, 3, 3, 4, 4]
    assert ramped_n_sleep(4, 0, 0) == 4  # no ramp
    cfg = SleepLMConfig(n_sleep=4)
    assert [draw_n_sleep(cfg, 0, s, ramp_steps=40) for s in (0, 20, 40)] == [1, 2, 4]
    ranged = SleepLMConfig(n_sleep=4, n_sleep_range=(2, 4))
    assert all(draw_n_sleep(ranged, 0, s, ramp_steps=1000) <= ramped_n_sleep(4, s, 1000) for s in range(0, 1000, 7))


def test_muon_rate_scales_with_n_as_configured():
    base = dict(model_args={"n_sleep": 4}, muon_lr=2e-3)
    assert TrainConfig(**base).effective_muon_lr() == 2e-3
    assert TrainConfig(**base, muon_lr_n_power=0.5).effective_muon_lr() == pytest.approx(1e-3)
    assert TrainConfig(**base, muon_lr_n_power=1.0).effective_muon_lr() == pytest.approx(5e-4)


@pytest.mark.parametrize("bad, match", [(dict(pass_norm="layer"), "pass_norm"), (dict(inject="concat"), "inject"),
                                        (dict(feed="h"), "feed"), (dict(feed="embedding", inject="add"), "inject")])
def test_bad_recipe_option_is_refused_naming_it(bad, match):
    with pytest.raises(ValueError, match=match):
        SleepLMConfig(**bad)


@pytest.mark.parametrize("bad", [dict(muon_lr_n_power=-1.0), dict(muon_lr_n_power=float("nan")),
                                 dict(n_ramp_steps=-5), dict(muon_lr=float("inf"))])
def test_bad_training_option_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrainConfig(**bad)


def test_token_cosine_is_one_for_identical_tokens_and_small_for_random_ones():
    same = torch.randn(2, 1, 16).expand(2, 8, 16)
    assert torch.allclose(token_cosine(same), torch.ones(2))
    assert token_cosine(torch.randn(2, 64, 512)).abs().max() < 0.05


def test_pass_statistics_report_one_value_per_pass():
    tokens, mask = tokens_and_mask()
    model = make(n_sleep=3)
    stats = pass_statistics(model, Batch(tokens, mask, tokens, {}), n_sleep=3)
    assert len(stats["h_rms"]) == len(stats["token_cos"]) == 3
    seen = {}
    with torch.no_grad():
        sleep_forward(model, tokens, mask, n_sleep=3,
                      on_pass=lambda w, p, s, h: seen.setdefault(p, []).append(h.square().mean(-1).sqrt().mean()))
    assert stats["h_rms"] == pytest.approx([float(sum(v) / len(v)) for _, v in sorted(seen.items())])
