"""The optimiser split (Muon on hidden matrices, AdamW on the rest) and the schedule."""
import pytest
import torch

from sleeplab.model import SleepLM
from sleeplab.presets import preset
from sleeplab.train import WarmupConstant, build_optimizers
from sleeplab.train.muon import BatchedMuon
from sleeplab.train.optim import split_parameters


def model():
    torch.manual_seed(0)
    return SleepLM(preset("hybrid", vocab_size=11, d_model=16, n_heads=2, window=8, max_positions=32))


def names(m, params):
    ids = {id(p) for p in params}
    return {n for n, p in m.named_parameters() if id(p) in ids}


def test_every_parameter_lands_in_exactly_one_group():
    m = model()
    groups = split_parameters(m)
    all_ids = [id(p) for g in groups.values() for p in g]
    assert sorted(all_ids) == sorted(id(p) for p in m.parameters())
    muon, decay, no_decay = (names(m, groups[k]) for k in ("muon", "decay", "no_decay"))
    assert decay == {"tok_emb.weight", "pos_emb.weight", "head.weight"}
    assert all(n.startswith("blocks.") and n.endswith(".weight") for n in muon)
    assert "blocks.0.mixer.qkv.weight" in muon and "blocks.1.mlp.up.weight" in muon
    assert {"blocks.1.mixer.A_log", "blocks.1.mixer.dt_bias", "norm_f.weight"} <= no_decay


def test_muon_and_adamw_with_the_paper_rates():
    muon, adam = build_optimizers(model(), muon_lr=2e-3, adam_lr=5e-5, weight_decay=0.1)
    assert isinstance(muon, BatchedMuon) and isinstance(adam, torch.optim.AdamW)
    assert muon.param_groups[0]["base_lr"] == 2e-3 and muon.param_groups[0]["weight_decay"] == 0.1
    assert [g["weight_decay"] for g in adam.param_groups] == [0.1, 0.0]  # gates and norms never decay


def test_warmup_then_constant():
    schedule = WarmupConstant(4)
    assert [schedule.factor(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert WarmupConstant(0).factor(0) == 1.0
    opts = build_optimizers(model(), muon_lr=1e-2, adam_lr=1e-3)
    schedule.apply(opts, 1)
    assert opts[0].param_groups[0]["lr"] == pytest.approx(5e-3)
    assert opts[1].param_groups[0]["lr"] == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 0"):
        WarmupConstant(-1)
