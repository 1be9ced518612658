"""The assignment graders: reference solutions pass; blank stubs, calls to the reference and typical
mistakes fail with a message that says what is wrong (not just "mismatch")."""
import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import sleeplab
from sleeplab.layers import band_mask
from sleeplab.lab import grading
from sleeplab.ops import gated_delta_rule as reference_rule
from sleeplab.sleep import sleep_forward

SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "assignments" / "solutions"


def load_solution(file, *names):
    """The functions ``names`` (default: the one named like the file) of solutions/<file>.py."""
    spec = importlib.util.spec_from_file_location(f"solution_{file}", SOLUTIONS / f"{file}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = [getattr(module, name) for name in names or (file,)]
    return found[0] if len(found) == 1 else found


gdr = load_solution("gated_delta_rule")
sleep_loop = load_solution("sleep_loop")
sliding_evict, sliding_mask = load_solution("sliding_eviction", "sliding_evict", "sliding_mask")
ridge_fit, probe_accuracy = load_solution("ridge_probe", "ridge_fit", "probe_accuracy")


def test_reference_solutions_pass(capsys):
    grading.check_gated_delta_rule(gdr)
    grading.check_sleep_loop(sleep_loop)
    grading.check_sliding_eviction(sliding_evict, sliding_mask)
    grading.check_ridge(ridge_fit, probe_accuracy)
    out = capsys.readouterr().out
    assert out.count("✅") == 4


def stub(*args, **kwargs):
    raise NotImplementedError


@pytest.mark.parametrize("check, args", [
    (grading.check_gated_delta_rule, (stub,)), (grading.check_sleep_loop, (stub,)),
    (grading.check_sliding_eviction, (stub, sliding_mask)), (grading.check_sliding_eviction, (sliding_evict, stub)),
    (grading.check_ridge, (stub, probe_accuracy)), (grading.check_ridge, (ridge_fit, stub)),
])
def test_blank_stubs_fail_with_friendly_message(check, args):
    with pytest.raises(AssertionError, match="not implemented yet"):
        check(*args)


# ---- delegation: calling the reference is refused, whichever way it is reached -----------------------

def via_alias(q, k, v, g, beta, scale=None, initial_state=None):
    return reference_rule(q, k, v, g, beta, scale=scale, initial_state=initial_state, output_final_state=True)


def via_attribute(q, k, v, g, beta, scale=None, initial_state=None):
    return sleeplab.ops.gated_delta_rule(q, k, v, g, beta, scale=scale, initial_state=initial_state,
                                         output_final_state=True)


def swallowing(q, k, v, g, beta, scale=None, initial_state=None):
    """Catches the refusal and falls back to the blank answer: still refused."""
    try:
        return sleeplab.ops.gated_delta.gated_delta_rule(q, k, v, g, beta, scale=scale, initial_state=initial_state,
                                                         output_final_state=True)
    except Exception:  # noqa: BLE001 - the point of this cheat
        return gdr(q, k, v, g, beta, scale, initial_state)


def untaken_branch(q, k, v, g, beta, scale=None, initial_state=None):
    if q.shape[0] > 1000:   # never true in the checker: only the static look at the code can see it
        return reference_rule(q, k, v, g, beta)
    return gdr(q, k, v, g, beta, scale, initial_state)


def sleep_forward_cheat(model, tokens, loss_mask, n_sleep):
    return sleeplab.sleep_forward(model, tokens, loss_mask, n_sleep=n_sleep)


def model_forward_cheat(model, tokens, loss_mask, n_sleep):
    return model._model(tokens, loss_mask, n_sleep=n_sleep)  # the model's forward runs sleep_forward


def streaming_cheat(model, tokens, loss_mask, n_sleep):
    return sleeplab.StreamingRunner(model._model, n_sleep=n_sleep)  # refused as soon as it is built


def closure_cheat():
    from sleeplab.sleep import evict

    def sliding(kvs, window):
        return evict(SimpleNamespace(eviction="sliding", window=window), kvs)
    return sliding


def ridge_cheat(x, y, lam):
    return sleeplab.lab.probe.ridge_hits(x, y, x, y), None


@pytest.mark.parametrize("check, args, called", [
    (grading.check_gated_delta_rule, (via_alias,), "sleeplab.ops.gated_delta_rule (as `reference_rule`)"),
    (grading.check_gated_delta_rule, (via_attribute,), "sleeplab.ops.gated_delta_rule"),
    (grading.check_gated_delta_rule, (swallowing,), "sleeplab.ops.gated_delta_rule"),
    (grading.check_gated_delta_rule, (untaken_branch,), "sleeplab.ops.gated_delta_rule (as `reference_rule`)"),
    (grading.check_sleep_loop, (sleep_forward_cheat,), "sleeplab.sleep_forward"),
    (grading.check_sleep_loop, (model_forward_cheat,), "sleeplab.sleep_forward"),
    (grading.check_sleep_loop, (streaming_cheat,), "sleeplab.StreamingRunner"),
    (grading.check_sliding_eviction, (closure_cheat(), sliding_mask), "sleeplab.sleep.evict (as `evict`)"),
    (grading.check_sliding_eviction, (sliding_evict, lambda q, p, w: band_mask(q, p + q, w)),
     "sleeplab.layers.band_mask"),
    (grading.check_ridge, (ridge_cheat, probe_accuracy), "sleeplab.lab.probe.ridge_hits"),
], ids=["alias", "attribute", "swallowed", "untaken-branch", "sleep_forward", "model-forward", "streaming",
        "closure", "band_mask", "ridge_hits"])
def test_calling_the_reference_fails_naming_it(check, args, called):
    with pytest.raises(grading.DelegationError, match=re.escape(f"your function calls {called}")):
        check(*args, seed=0)


def test_the_reference_works_again_after_a_refusal():
    with pytest.raises(grading.DelegationError):
        grading.check_gated_delta_rule(via_alias, seed=0)
    assert sleeplab.ops.gated_delta_rule is reference_rule and sleeplab.sleep_forward is sleep_forward


def test_zeros_stub_fails_and_points_at_first_token():
    def zeros(q, k, v, g, beta, scale=None, initial_state=None):
        B, T, H, _ = q.shape
        return torch.zeros_like(v), torch.zeros(B, H, k.shape[-1], v.shape[-1], dtype=v.dtype)

    with pytest.raises(AssertionError, match=r"first at token t=0 \(relative error 1\.00e\+00"):
        grading.check_gated_delta_rule(zeros, seed=0)


def buggy_gdr(mistake):
    """The reference solution with one bug in it."""
    def fn(q, k, v, g, beta, scale=None, initial_state=None):
        B, T, H, K = q.shape
        scale = K ** -0.5 if scale is None else scale
        if mistake == "scale":
            scale = 1.0
        S = torch.zeros(B, H, K, v.shape[-1], dtype=q.dtype)
        if initial_state is not None and mistake != "initial_state":
            S = initial_state.clone()
        out = []
        for t in range(T):
            if mistake != "no_decay":
                S = g[:, t].exp()[..., None, None] * S
            guess = 0 if mistake == "hebbian" else torch.einsum("bhkv,bhk->bhv", S, k[:, t])
            S = S + k[:, t, :, :, None] * (beta[:, t, :, None] * (v[:, t] - guess))[:, :, None, :]
            out.append(scale * torch.einsum("bhkv,bhk->bhv", S, q[:, t]))
        o = torch.stack(out, 1)
        if mistake == "transposed_state":
            S = S.transpose(-1, -2)
        if mistake == "heads_first":
            o = o.transpose(1, 2)
        if mistake == "in_place" and initial_state is not None:
            initial_state.zero_()
        return o, S
    return fn


@pytest.mark.parametrize("mistake, message", [
    ("scale", "read-out scale"),
    ("no_decay", "forget gate is missing"),
    ("hebbian", "Hebbian rule"),
    ("initial_state", "initial_state is ignored"),
    ("transposed_state", "paper's V x K orientation"),
    ("heads_first", "H and T are swapped"),
    ("in_place", "changed its input initial_state in place"),
])
def test_typical_gdr_mistakes_are_named(mistake, message):
    with pytest.raises(AssertionError, match=message):
        grading.check_gated_delta_rule(buggy_gdr(mistake), seed=1)


def buggy_sleep(mistake):
    def fn(model, tokens, loss_mask, n_sleep):
        B, T = tokens.shape
        L = model.config.window
        S = model.empty_state(B)
        pieces, cache = [], None
        for start in range(0, T, L):
            chunk = tokens[:, start:start + L]
            l = chunk.shape[1]
            causal = torch.ones(l, l, dtype=torch.bool).tril()
            mask = torch.ones(l, l, dtype=torch.bool) if mistake == "full_mask" else causal
            if mistake == "reset_S":
                S = model.empty_state(B)
            h = model.embed(chunk, 0 if mistake == "relative_positions" else start)
            sleeping = not loss_mask[:, start:start + L].any()
            passes = n_sleep if (sleeping or mistake == "loop_when_predicting") else 1
            if mistake == "one_pass":
                passes = 1
            for n in range(passes):
                if mistake == "reembed" and n > 0:
                    h = model.embed(chunk, start)
                if mistake == "keep_cache":
                    h, S, kvs = model.run_blocks(h, S, mask, cache)
                    cache = kvs
                else:
                    h, S, _ = model.run_blocks(h, S, mask)
            pieces.append(h.new_zeros(B, l, model.config.vocab_size) if sleeping else model.head_logits(h))
        return torch.cat(pieces, 1)
    return fn


@pytest.mark.parametrize("mistake, message", [
    ("reset_S", r"window 1 .*pass 1 of 1: the fast weights S .* carried from the previous window"),
    ("relative_positions", r"absolute start position"),
    ("one_pass", r"window 0 .* sleeps: expected 3 pass\(es\) .* you ran 1"),
    ("loop_when_predicting", r"window 1 .* carries loss, so it gets ONE pass: expected 1 pass\(es\)"),
    ("reembed", r"embed each window ONCE"),
    ("keep_cache", r"you passed a KV cache"),
    ("full_mask", r"window 0 .*pass 1 of 3: same h and S going in, different h coming out .* causal"),
])
def test_typical_sleep_loop_mistakes_are_named(mistake, message):
    with pytest.raises(AssertionError, match=message):
        grading.check_sleep_loop(buggy_sleep(mistake), seed=2)


def test_wrong_output_shape_is_reported():
    def only_last(model, tokens, loss_mask, n_sleep):
        return sleep_loop(model, tokens, loss_mask, n_sleep)[:, -4:]

    with pytest.raises(AssertionError, match=r"must return logits \[B, T, vocab\]"):
        grading.check_sleep_loop(only_last, seed=3)
