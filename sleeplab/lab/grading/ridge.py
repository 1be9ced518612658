"""Assignment 4's check: the student's ridge-regression probe against known answers (an exactly linear
target it must recover, and the closed form of ridge with an unpenalised intercept written out here),
refusing sleeplab's own probe (``sleeplab.lab.probe``)."""
from __future__ import annotations

import torch

from .. import probe
from .common import _call, _rel, _seed, _single_threaded

REFERENCES = {"sleeplab.lab.probe.ridge_hits": probe.ridge_hits, "sleeplab.lab.probe.probe_cells": probe.probe_cells}


def _closed_form(x, y, lam):
    """argmin_{w, b} ||x w + b - y||^2 + lam ||w||^2: centre, solve the normal equations, put b back."""
    mx, my = x.mean(0), y.mean(0)
    xc = x - mx
    w = torch.linalg.solve(xc.T @ xc + lam * torch.eye(x.shape[1], dtype=x.dtype), xc.T @ (y - my))
    return w, my - mx @ w


def _diagnose(w, b, x, y, lam) -> str:
    """Name the mistake whose answer reproduces the student's, if one does."""
    ones = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    penalised = torch.linalg.solve(ones.T @ ones + lam * torch.eye(ones.shape[1], dtype=x.dtype), ones.T @ y)
    no_intercept = torch.linalg.solve(x.T @ x + lam * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)
    guesses = {
        "the intercept is penalised too (a column of ones inside the ridge): centre x and y instead, "
        "and recover b = mean(y) - mean(x) w": (penalised[:-1], penalised[-1]),
        "there is no intercept: fit on centred x and y, then b = mean(y) - mean(x) w": (no_intercept, None),
        "the penalty is missing (lam ignored)": _closed_form(x, y, 0.0),
        "the penalty is lam squared: the objective is ||x w + b - y||^2 + lam ||w||^2":
            _closed_form(x, y, lam * lam),
    }
    for hint, (gw, gb) in guesses.items():
        if _rel(w, gw) < 1e-6 and (gb is None or _rel(b, gb) < 1e-6):
            return f" Your answer matches a known mistake: {hint}."
    if _rel(w, _closed_form(x, y, 2 * lam)[0]) < 1e-6:
        return " Your answer matches the penalty 2 lam: the objective is ||x w + b - y||^2 + lam ||w||^2."
    return ""


def _fit(student_fn, seed, x, y, lam):
    out = _call("ridge_fit", student_fn, seed, x.clone(), y.clone(), lam, refuse=REFERENCES)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise AssertionError(f"ridge_fit must return a pair (w, b), got {type(out).__name__}")
    w, b = out
    D, c = x.shape[1], y.shape[1]
    if not isinstance(w, torch.Tensor) or tuple(w.shape) != (D, c):
        raise AssertionError(f"w must be a [D, c] = {(D, c)} tensor (one column per target), got "
                             f"{getattr(w, 'shape', type(w).__name__)} (seed={seed})")
    if not isinstance(b, torch.Tensor) or tuple(b.shape) != (c,):
        raise AssertionError(f"b must be a [c] = {(c,)} tensor (one intercept per target), got "
                             f"{getattr(b, 'shape', type(b).__name__)} (seed={seed})")
    return w.detach().double(), b.detach().double()


@_single_threaded
def check_ridge(fit_fn, accuracy_fn, seed: int | None = None) -> None:
    """``fit_fn(x [n, D], y [n, c], lam) -> (w [D, c], b [c])`` minimising ||x w + b - y||^2 + lam ||w||^2
    (b not penalised), and ``accuracy_fn(w, b, x, y) -> [c]``: the fraction of rows where
    (x w + b > 1/2) equals the 0/1 target, per column."""
    seed = _seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # 1. known answer: an exactly linear target, tiny penalty -> the true weights and intercept come back
    x = torch.randn(200, 6, generator=gen, dtype=torch.float64) * 3 + 1
    w_true, b_true = torch.randn(6, 2, generator=gen, dtype=torch.float64), torch.tensor([0.5, -2.0], dtype=torch.float64)
    w, b = _fit(fit_fn, seed, x, x @ w_true + b_true, 1e-9)
    if _rel(w, w_true) > 1e-5 or _rel(b, b_true) > 1e-5:
        raise AssertionError(f"on y = x W + b exactly, with lam = 1e-9, your fit should give back W and b: relative "
                             f"errors {_rel(w, w_true):.1e} (w) and {_rel(b, b_true):.1e} (b)."
                             f"{_diagnose(w, b, x, x @ w_true + b_true, 1e-9)} (seed={seed})")
    # 2. a real penalty on noisy 0/1 targets: the closed form
    for lam in (3.0, 40.0):
        x = torch.randn(60, 8, generator=gen, dtype=torch.float64) + 2
        y = (torch.rand(60, 3, generator=gen, dtype=torch.float64) < 0.4).double()
        w, b = _fit(fit_fn, seed, x, y, lam)
        ref_w, ref_b = _closed_form(x, y, lam)
        if _rel(w, ref_w) > 1e-6 or _rel(b, ref_b) > 1e-6:
            raise AssertionError(f"with lam = {lam}, w is off by {_rel(w, ref_w):.1e} and b by {_rel(b, ref_b):.1e} "
                                 f"(relative) from the ridge solution.{_diagnose(w, b, x, y, lam)} (seed={seed})")
    # 3. the score: a known table of hits
    w = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    b = torch.tensor([0.0, 1.0], dtype=torch.float64)
    xs = torch.tensor([[0.2], [0.7], [1.5], [-3.0]], dtype=torch.float64)   # scores col 0: .2 .7 1.5 -3
    ys = torch.tensor([[0, 1], [1, 0], [0, 0], [0, 1]], dtype=torch.float64)  # col 1: .8 .3 -.5 4
    acc = _call("probe_accuracy", accuracy_fn, seed, w, b, xs, ys, refuse=REFERENCES)
    want = torch.tensor([0.75, 1.0], dtype=torch.float64)
    if not isinstance(acc, torch.Tensor) or acc.shape != want.shape or not torch.allclose(acc.double(), want):
        raise AssertionError(f"probe_accuracy on a known case: expected {want.tolist()} (predict 1 where x w + b "
                             f"> 1/2, compare with y, average over ROWS), got "
                             f"{acc.tolist() if isinstance(acc, torch.Tensor) else acc!r}")
    print(f"✅ ridge_fit recovers a known linear map and matches the closed form at lam = 3 and 40; "
          f"probe_accuracy scores a known case (seed={seed})")
