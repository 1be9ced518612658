"""op_mode="triton" as a model option: the same model as the chunk path (values and gradients), the
kernel on windows and the chunk path on longer inputs, refused for the other rules, switchable on a
saved model. The kernels run in Triton's CPU interpreter (tests/conftest.py), in float32 (they refuse
float64), so the tolerances are float32 rounding through a 4-block model, not looseness."""
from dataclasses import asdict

import pytest
import torch

import sleeplab
from sleeplab.checkpoint import write
from sleeplab.model import SleepLM, SleepLMConfig
from sleeplab.presets import preset
from sleeplab.sleep import parallel_forward, sleep_forward
from sleeplab.tasks import rule110
from sleeplab.train.cli import build_parser, config_from_args

L, T, V = 24, 80, 11  # windows 24, 24, 24, 8 for Algorithm 1; T = 80 > 64 for the N = 1 parallel path
TOL = 1e-5  # observed ~2e-7 (logits) and ~7e-7 (worst gradient)


@pytest.fixture()
def kernel_calls(monkeypatch):
    """The sequence lengths the Triton kernel was called on (so a test sees which path ran)."""
    pytest.importorskip("triton", reason="triton is optional (pip install triton); op_mode='triton' needs it")
    from sleeplab.ops import triton_gdn
    if not triton_gdn.INTERPRETED:
        pytest.skip("triton was imported without TRITON_INTERPRET=1; tests/gpu covers the compiled kernels")
    calls, kernel = [], triton_gdn.single_chunk_gated_delta

    def counted(q, *args):
        calls.append(q.shape[1])
        return kernel(q, *args)

    monkeypatch.setattr(triton_gdn, "single_chunk_gated_delta", counted)
    return calls


def twins(seed=0):
    """The same weights built with op_mode chunk and triton."""
    torch.manual_seed(seed)
    chunk = SleepLM(preset("sleep", vocab_size=V, d_model=32, n_heads=2, window=L, max_positions=T))
    triton = SleepLM(SleepLMConfig(**{**chunk.config.to_dict(), "op_mode": "triton"}))
    triton.load_state_dict(chunk.state_dict())
    return chunk, triton


def batch(seed=1, B=2):
    tokens = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[:, -8:] = True
    return tokens, mask


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def logits_and_grads(model, forward):
    model.zero_grad()
    logits = forward(model)
    (logits * torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))).sum().backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("path", ["sleep_forward-N2", "parallel_forward"])
def test_triton_op_mode_model_equals_chunk_model(kernel_calls, path):
    tokens, mask = batch()
    forward = {"sleep_forward-N2": lambda m: sleep_forward(m, tokens, mask, n_sleep=2),
               "parallel_forward": lambda m: parallel_forward(m, tokens)}[path]
    chunk, triton = twins()
    want, want_grads = logits_and_grads(chunk, forward)
    assert kernel_calls == []
    got, got_grads = logits_and_grads(triton, forward)
    # Algorithm 1 hands each GDN block one window at a time (the kernel); the N = 1 path the whole
    # 80-token sequence, past the kernel's 64, so that falls back to the chunk path
    assert sorted(set(kernel_calls)) == ([8, 24] if path == "sleep_forward-N2" else [])
    assert rel(got, want) <= TOL
    assert got_grads.keys() == want_grads.keys() and any("A_log" in n for n in want_grads)
    for name in want_grads:
        assert rel(got_grads[name], want_grads[name]) <= TOL, name


@pytest.mark.parametrize("rule", ["delta", "hebbian"])
def test_triton_op_mode_refused_for_other_rules(rule):
    with pytest.raises(ValueError, match=rf"op_mode 'triton' has kernels for rule 'gated_delta' only, got "
                                         rf"rule '{rule}'; use op_mode 'chunk' or 'recurrent'"):
        SleepLMConfig(rule=rule, op_mode="triton")


def test_unknown_op_mode_is_refused_naming_the_allowed_ones():
    with pytest.raises(ValueError, match=r"op_mode 'cuda' is not known; allowed: \('chunk', 'recurrent', 'triton'\)"):
        SleepLMConfig(op_mode="cuda")


def test_model_trained_with_chunk_loads_and_runs_with_triton(kernel_calls, tmp_path):
    """op_mode picks an execution, not weights: a chunk model's file runs with triton, same logits."""
    chunk, _ = twins()
    task_config = rule110.Rule110Config()
    manifest = {"model_config": chunk.config.to_dict(), "task": "rule110", "task_config": asdict(task_config),
                "train_config": {}, "step": 0}
    path = write(tmp_path / "chunk.sleeplab", "export", manifest, {"model": chunk.state_dict()})
    loaded = sleeplab.load(path, op_mode="triton")
    assert loaded.config.op_mode == "triton" and sleeplab.load(path).config.op_mode == "chunk"
    tokens, mask = batch()
    with torch.no_grad():
        assert rel(loaded(tokens, mask), chunk.eval()(tokens, mask)) <= TOL
    assert kernel_calls
    with pytest.raises(ValueError, match=r"op_mode 'fast' is not known"):
        sleeplab.load(path, op_mode="fast")


def test_model_arg_passes_op_mode_triton_to_the_model_config():
    args = build_parser().parse_args(["train", "--model-arg", "op_mode=triton", "--steps", "1"])
    assert config_from_args(args).model_config().op_mode == "triton"
