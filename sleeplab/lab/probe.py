"""Inside a sleep: what each pass does to the features h and the fast weights S, and what they encode.

The evidence for or against "each pass adds serial computation" (the paper's explanation of why sleep
helps depth), in two functions a reader can run on any Rule 110 checkpoint:

    trace = pass_trace(model, tokens, n_sleep=4)   # per window and pass: scale of h, token likeness, ΔS
    table = probe_cells(model, n_sleep=4)          # per pass n and CA step k: can a linear read decode
                                                   # the window's cells after k steps from h, or from S?
    table = probe_cells(model, reader="mlp")       # the same with a one-hidden-layer probe

If pass n computes step n of the automaton, the probe of pass n should decode k <= n far better than
k > n. Both functions run Algorithm 1 through ``sleep_forward(on_pass=...)``: there is one sleep loop.
"""
from __future__ import annotations

import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from ..api import token_cosine, token_rms
from ..sleep import sleep_forward
from ..tasks import held_out, rule110


def relative_change(after: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """Mean over examples of ||after - before|| / ||before||; S [B, H, K, V] -> scalar. NaN where S
    arrives empty (the first pass of the first window): there is nothing to be relative to."""
    before_norm = before.flatten(1).norm(dim=1)                            # [B]
    change = (after - before).flatten(1).norm(dim=1)
    return (change / before_norm.where(before_norm > 0, float("nan"))).mean()


@torch.no_grad()
def pass_trace(model, tokens: torch.Tensor, n_sleep: int, loss_mask: torch.Tensor | None = None) -> dict:
    """Run Algorithm 1 on ``tokens`` [B, T] and record every sleep pass. With W sleeping windows of L
    tokens, N = ``n_sleep`` passes and G GDN blocks, returns tensors on the CPU:

        h_rms     [W, N]     scale of the pass's output features h, mean over the batch (``api.token_rms``:
                             each token's RMS over its features, averaged over tokens; as training logs it)
        token_cos [W, N]     mean cosine between different tokens' h (``api.token_cosine``)
        s_change  [W, N, G]  ||S_after - S_before|| / ||S_before||, where S_before is the S the pass
                             started from: for the first pass of a window, the S that arrived from the
                             previous window (another window's content); NaN for window 0's first pass
        s_norm    [W, N, G]  mean ||S_after|| per example
        h         [W, N, B, L, d]             the features themselves, for probing
        S         [W, N, G, B, H, K, V]       the fast weights after each pass, for probing

    Memory grows as B * W * N * G * H * K * V floats (2 MB per example for the paper's model at
    N = 4, W = 4): trace a few dozen examples at a time. Only windows that sleep are traced, so the
    sleeping windows must come first and follow each other (the Rule 110 layout): a prediction pass
    in between would change S out of sight and make the first pass's S_before wrong.
    """
    passes = []  # (window, pass, [S per GDN block], h), in the order Algorithm 1 runs them
    sleep_forward(model, tokens, loss_mask, n_sleep=n_sleep,
                  on_pass=lambda w, n, states, h: passes.append(
                      (w, n, [s.float().cpu() for s in states if s is not None], h.float().cpu())))
    windows = sorted({w for w, *_ in passes})
    if windows != list(range(len(windows))):
        raise ValueError(f"sleeping windows {windows} do not start the sequence one after another: "
                         "a prediction pass between them would change S where the trace cannot see it")
    W, N = len(windows), n_sleep
    S = torch.stack([torch.stack(states) for _, _, states, _ in passes])   # [W*N, G, B, H, K, V]
    incoming = torch.cat([torch.zeros_like(S[:1]), S[:-1]])                # S each pass started from
    G = S.shape[1]
    s_change = torch.tensor([[relative_change(S[i, g], incoming[i, g]) for g in range(G)]
                             for i in range(W * N)])
    h = torch.stack([h for *_, h in passes])                               # [W*N, B, L, d]
    return {"h_rms": torch.stack([token_rms(x).mean() for x in h]).view(W, N),
            "token_cos": torch.stack([token_cosine(x).mean() for x in h]).view(W, N),
            "s_change": s_change.view(W, N, G),
            "s_norm": S.flatten(3).norm(dim=3).mean(2).view(W, N, G),
            "h": h.view(W, N, *h.shape[1:]),
            "S": S.view(W, N, *S.shape[1:])}


def cells_after(states: torch.Tensor, t: int, width: int, boundary: str = "periodic") -> torch.Tensor:
    """The probe's targets: packed Rule 110 states [B, W] -> their cells after k = 0..t steps
    [B, W, t+1, width] (0/1), by the task's own rule."""
    rollout = [states]
    for _ in range(t):
        rollout.append(rule110.step(rollout[-1], width, boundary))
    return rule110.unpack(torch.stack(rollout, 2), width)


def ridge_hits(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor) -> torch.Tensor:
    """A linear probe: fit y ~ x w + b by ridge regression, one penalty per column chosen by its
    leave-one-out error (closed form, so no validation split is spent), and score it on held-out data.
    x [n, D] features, y [n, c] in {0, 1} -> hits [n_test, c]: (x_test w + b > 1/2) == y_test.

    Least squares on 0/1 targets instead of logistic regression: one eigendecomposition of the D x D
    feature covariance serves every penalty and column, with no optimiser to tune."""
    x, y, x_test = x.double(), y.double(), x_test.double()
    mean_x, mean_y = x.mean(0), y.mean(0)
    eig, basis = torch.linalg.eigh((x - mean_x).T @ (x - mean_x))        # [D], [D, D]
    p, p_test = (x - mean_x) @ basis, (x_test - mean_x) @ basis           # features in the eigenbasis
    pty = p.T @ (y - mean_y)                                              # [D, c]
    best_err = torch.full((y.shape[1],), float("inf"), dtype=x.dtype)
    best = torch.zeros(len(x_test), y.shape[1], dtype=x.dtype)
    for lam in eig.clamp_min(0).mean() * 10.0 ** torch.arange(-4, 3, dtype=x.dtype):
        inverse = 1 / (eig.clamp_min(0) + lam)                            # [D]
        leverage = (p.square() * inverse).sum(1, keepdim=True)            # [n, 1] diagonal of the hat matrix
        residual = y - mean_y - p @ (inverse[:, None] * pty)              # [n, c]
        loo = (residual / (1 - leverage)).square().mean(0)                # [c] leave-one-out error
        better = loo < best_err
        best_err = torch.where(better, loo, best_err)
        best[:, better] = (p_test @ (inverse[:, None] * pty))[:, better]
    return (best + mean_y > 0.5) == y_test.bool()


def mlp_hits(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
             hidden: int = 256, steps: int = 4000, batch: int = 256, lr: float = 1e-3,
             val_share: float = 0.125, seed: int = 0) -> torch.Tensor:
    """A nonlinear probe, same contract as :func:`ridge_hits`: one hidden layer of ``hidden`` GELU
    units and a logistic output per column, trained for ``steps`` AdamW steps on the first
    1 - ``val_share`` of the fit rows; of the weights seen every ``steps // 40`` steps, those with the
    lowest cross-entropy on the last ``val_share`` score the test rows.

    Why one hidden layer: it reads what a linear map misses (a Rule 110 step is an XOR-like function
    of three cells) while staying small beside the samples it is fitted on. A budget in steps, not
    epochs, so a probe fitted on few rows (one per window) trains as long as one fitted on many (one
    per token). Early stopping on a validation split, not on the test rows: the test rows only score."""
    g = torch.Generator().manual_seed(seed)
    x, y, x_test = x.float(), y.float(), x_test.float()
    n_val = max(1, round(len(x) * val_share))
    mean, std = x[:-n_val].mean(0), x[:-n_val].std(0).clamp_min(1e-6)   # features at unit scale
    x, x_test = (x - mean) / std, (x_test - mean) / std
    x_fit, y_fit, x_val, y_val = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.GELU(),
                                  torch.nn.Linear(hidden, y.shape[1]))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-2)
    best_loss, best = float("inf"), None
    for step in range(1, steps + 1):
        rows = torch.randint(len(x_fit), (min(batch, len(x_fit)),), generator=g)
        with torch.enable_grad():      # callers read models under no_grad; the probe itself trains
            loss = F.binary_cross_entropy_with_logits(net(x_fit[rows]), y_fit[rows])
            opt.zero_grad()
            loss.backward()
        opt.step()
        if step % max(1, steps // 40) == 0:
            with torch.no_grad():
                val_loss = float(F.binary_cross_entropy_with_logits(net(x_val), y_val))
                if val_loss < best_loss:
                    best_loss, best = val_loss, net(x_test) > 0
    return best == y_test.bool()


READERS = {"linear": ridge_hits, "mlp": mlp_hits}


def check_reader(reader: str) -> str:
    """``reader`` itself if it names a probe of :data:`READERS`, else ValueError naming both."""
    if reader not in READERS:
        raise ValueError(f"reader={reader!r} is not a probe; allowed: {list(READERS)}")
    return reader


def read_at_queries(S: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """What S returns when read at fixed query vectors: S [..., G, B, H, K, V], queries [H, K, m]
    -> [..., B, G*H*m*V]. The model reads S only this way (o = S^T q for a unit query q), so these
    readouts are the linear functions of S that the model itself can compute; with m random queries
    they are also a random projection of S along its key axis, cutting H*K*V numbers per block to
    H*m*V (16x for the paper's model at m = 4) while keeping the distances between states close."""
    read = torch.einsum("...gbhkv,hkm->...bghmv", S, queries)
    return read.flatten(-4)


def probe_cells(model, n_examples: int = 512, n_sleep: int | None = None, task_config=None,
                queries: int = 4, test_share: float = 0.25, chunk: int = 32, seed: int = 0,
                reader: str = "linear") -> dict:
    """How well a probe decodes each window's cells after k = 0..t CA steps, after each pass: a linear
    one (:func:`ridge_hits`) or, with ``reader="mlp"``, one with a hidden layer (:func:`mlp_hits`).

    ``n_examples`` held-out Rule 110 examples (``task_config``: the model's own by default), every
    state of every sleeping window; the first 1 - ``test_share`` of the examples fit the probes, the
    rest score them. Two probes per pass n and step k:

    * from h: cell i from the features at token position i (cell i *is* token i of its window), one
      weight vector shared by every position and window, so it asks "does the token know its future";
    * from S: all cells of the window from :func:`read_at_queries` of S (the G GDN blocks, ``queries``
      random unit queries per head, seeded by ``seed``), one weight vector per cell.

    Returns {"h", "S": [N, t+1] held-out fraction of cells right, "h_se", "S_se": their standard errors,
    "h_cells", "S_cells": the same per cell [N, t+1, width] (cell 0 after t steps is the task's label),
    "majority": [t+1] the fraction right by always answering the training split's more common value at
    step k, "test_windows": how many windows scored the probes, "n_sleep": N, "reader"}.

    The standard error takes the window as its unit: a window's states are drawn independently of
    the others', while the cells of one window (and of one rollout) are not independent of each other.
    It is the error of scoring on this test split, not of fitting the probe on this training split.
    """
    if getattr(model, "task", "rule110") != "rule110":
        raise ValueError(f"probe_cells decodes Rule 110 cells; this model was trained on {model.task!r}")
    fit_and_score = READERS[check_reader(reader)]
    config = task_config or model.task_config
    N = n_sleep or model.config.n_sleep
    t, width = config.t, config.width
    batch = held_out("rule110", config, n_examples)
    targets = cells_after(batch.meta["state_int"], t, width, config.boundary)   # [B, W, t+1, width]
    head = next(b.mixer for b in model.blocks if b.kind == "gdn")
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(head.n_heads, head.head_dim, queries, generator=g), dim=1)  # [H, K, m]
    h_feats, s_feats = [], []
    for start in range(0, n_examples, chunk):
        trace = pass_trace(model, batch.tokens[start:start + chunk].to(model.device), N)
        h_feats.append(trace["h"][..., :width, :].permute(1, 2, 0, 3, 4))        # [N, b, W, width, d]
        s_feats.append(read_at_queries(trace["S"], q).permute(1, 2, 0, 3))         # [N, b, W, D]
    h_feats, s_feats = torch.cat(h_feats, 1), torch.cat(s_feats, 1)
    fit = slice(0, round(n_examples * (1 - test_share)))
    test = slice(fit.stop, n_examples)
    # samples for the h probe: (example, window, cell); for the S probe: (example, window)
    cell_k = targets.transpose(2, 3)                                       # [B, W, width, t+1]
    window_k = targets.flatten(2)                                          # [B, W, (t+1)*width]
    hits = {"h": [], "S": []}                                              # per pass: [windows, t+1, width]
    for n in range(N):
        h = fit_and_score(h_feats[n, fit].flatten(0, 2), cell_k[fit].flatten(0, 2),
                          h_feats[n, test].flatten(0, 2), cell_k[test].flatten(0, 2))
        hits["h"].append(h.view(-1, width, t + 1).transpose(1, 2).double())
        s = fit_and_score(s_feats[n, fit].flatten(0, 1), window_k[fit].flatten(0, 1),
                          s_feats[n, test].flatten(0, 1), window_k[test].flatten(0, 1))
        hits["S"].append(s.view(-1, t + 1, width).double())
    common = cell_k[fit].flatten(0, 2).double().mean(0) > 0.5              # [t+1] more common value
    majority = (cell_k[test].flatten(0, 2).bool() == common).double().mean(0)
    table = {"majority": majority, "n_sleep": N, "reader": reader}
    for name, per_pass in hits.items():
        per_pass = torch.stack(per_pass)                                       # [N, windows, t+1, width]
        per_window = per_pass.mean(3)                                          # [N, windows, t+1]
        windows = per_window.shape[1]
        table |= {name: per_window.mean(1), f"{name}_se": per_window.std(1) / windows ** 0.5,
                  f"{name}_cells": per_pass.mean(1), "test_windows": windows}
    return table


# ---- figures ----------------------------------------------------------------------------------------

_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

def trace_figure(trace: dict, title: str = "") -> go.Figure:
    """Three panels of :func:`pass_trace`, x = pass: rms of h, token cosine, ΔS / ||S_before|| (one
    line per window; for ΔS, the mean over GDN blocks, window 0 starting from its second pass)."""
    W, N = trace["h_rms"].shape
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08, subplot_titles=(
        "rms of h", "mean cosine between tokens' h", "ΔS / ||S before the pass||"))
    passes = list(range(1, N + 1))
    for w in range(W):
        color = _PALETTE[w % len(_PALETTE)]
        change = trace["s_change"][w].mean(1).tolist()
        for col, ys in enumerate((trace["h_rms"][w].tolist(), trace["token_cos"][w].tolist(), change), 1):
            fig.add_trace(go.Scatter(x=passes, y=ys, name=f"window {w}", legendgroup=str(w), showlegend=col == 1,
                                     mode="lines+markers", line=dict(color=color, width=2.5)), 1, col)
    fig.update_xaxes(title_text="pass n of the sleep", tickvals=passes)
    fig.update_yaxes(title_text="rms", row=1, col=1)
    fig.update_yaxes(title_text="cosine", range=[0, 1], row=1, col=2)
    fig.update_yaxes(title_text="relative change", rangemode="tozero", row=1, col=3)
    fig.update_layout(title=title, template="plotly_white", height=380, legend=dict(orientation="h", y=-0.25))
    return fig


def probe_figure(table: dict, title: str = "") -> go.Figure:
    """The pass x k heatmaps of :func:`probe_cells`, probe on h beside probe on S. Colour: points of
    held-out accuracy above the majority baseline (0 = decodes nothing); text: the accuracy itself."""
    N, K = table["h"].shape
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        "probe on h (cell i from token i)", "probe on S (read at random queries)"))
    above = {name: 100 * (table[name] - table["majority"]) for name in ("h", "S")}
    top = max(float(a.max()) for a in above.values())
    for col, name in enumerate(("h", "S"), 1):
        fig.add_trace(go.Heatmap(
            z=above[name].tolist(), x=list(range(K)), y=list(range(1, N + 1)), zmin=0, zmax=top,
            colorscale="Viridis", showscale=col == 2, colorbar=dict(title="points above<br>majority"),
            text=[[f"{v:.0%}" for v in row] for row in table[name].tolist()], texttemplate="%{text}",
            hovertemplate="pass %{y}, k = %{x}: %{text} right<extra></extra>"), 1, col)
    fig.update_xaxes(title_text="CA steps k after the window's state", dtick=1)
    fig.update_yaxes(title_text="after pass n", dtick=1, autorange="reversed")
    fig.update_layout(title=title, template="plotly_white", height=220 + 50 * N)
    return fig



def cell_figure(table: dict, source: str = "S", cell: int = 0, title: str = "") -> go.Figure:
    """One cell's decodability against k, one line per pass: for cell 0, the point k = t is the task's
    own label, and the line shows how far down the rollout a linear read of ``source`` (h or S) gets."""
    N, K = table[source].shape
    fig = go.Figure()
    for n in range(N):
        fig.add_trace(go.Scatter(x=list(range(K)), y=table[f"{source}_cells"][n, :, cell].tolist(),
                                 name=f"after pass {n + 1}", mode="lines+markers",
                                 line=dict(color=_PALETTE[n % len(_PALETTE)], width=2.5)))
    fig.add_trace(go.Scatter(x=list(range(K)), y=table["majority"].tolist(), name="majority baseline",
                             mode="lines", line=dict(color="#7f7f7f", dash="dash")))
    fig.update_layout(title=title, template="plotly_white", height=380, xaxis_title="CA steps k",
                      yaxis_title=f"held-out accuracy on cell {cell}", yaxis_range=[0.4, 1.02],
                      legend=dict(orientation="h", y=-0.25))
    return fig
