"""Where the answer waits: S read with the query's own key.

The model answers label j from query token Q_j of the prediction window, and the only road from the
evicted windows to that token is S: each GDN block reads the S the sleeps left, o_j = S^T q_j per
head, with the key q_j the block computes for Q_j. ``probe.probe_cells`` reads S at random unit keys
and finds the label's cell there only weakly. This module reads S where the model does:

    reads = query_reads(model, tokens)          # per query token: S read at its own key, every GDN block
    table = probe_answer(model)                 # a linear probe from each read to each label

    python -m sleeplab.lab.query_probe CHECKPOINT ... --examples 2048 --out data/results/query_probe.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from ..ops import compute_dtype
from ..sleep import sleep_forward, window_plan
from ..tasks import held_out
from .probe import read_at_queries, ridge_hits

READS = ("own", "other", "random")  # at Q_j's key, at Q_(j+1 mod n)'s key, at random unit keys


@torch.no_grad()
def query_reads(model, tokens: torch.Tensor, n_sleep: int | None = None) -> dict:
    """Run Algorithm 1 on ``tokens`` [B, T] and catch each GDN block's input in the last (prediction)
    window. Returns, on the CPU, for G GDN blocks with H heads of K x V fast weights and Q tokens in
    the prediction window:

        states  [B, G, H, K, V]   the S each block was handed: what the sleeps left
        keys    [B, Q, G, H, K]   the unit key each block computes for each token (q in layers.py)
        reads   [B, Q, G*H*V]     S^T q per block and head: what the token reads of the sleeps' S
        logits  [B, Q, vocab]     the model's own output at those tokens
    """
    mixers = [b.mixer for b in model.blocks if b.kind == "gdn"]
    caught: dict[int, tuple] = {}
    hooks = [m.register_forward_pre_hook(lambda m, args, i=i: caught.__setitem__(i, args))
             for i, m in enumerate(mixers)]
    try:
        logits = sleep_forward(model, tokens, n_sleep=n_sleep)
    finally:
        for hook in hooks:
            hook.remove()
    # without a loss mask the last window predicts and every earlier one sleeps (window_plan), so each
    # block's last call is the prediction pass, and the state it was handed is the sleeps'
    last = window_plan(None, tokens.shape[1], model.config.window)[-1]
    Q = last.end - last.start
    keys, states = [], []
    for i, mixer in enumerate(mixers):
        x, state = caught[i]
        q, *_ = mixer.project(x)
        keys.append(mixer.unit_heads(q, compute_dtype(x)).float())       # the key the block itself reads with
        states.append(state.float())
    keys, states = torch.stack(keys, 2), torch.stack(states, 1)                 # [B, Q, G, H, K], [B, G, H, K, V]
    reads = torch.einsum("bqghk,bghkv->bqghv", keys, states).flatten(2)
    return {"states": states.cpu(), "keys": keys.cpu(), "reads": reads.cpu(), "logits": logits[:, -Q:].float().cpu()}


def probe_answer(model, n_examples: int = 2048, n_sleep: int | None = None, task_config=None,
                 random_keys: int = 4, test_share: float = 0.25, chunk: int = 128, seed: int = 0) -> dict:
    """One ridge probe per label j and read (:data:`READS`), fitted on the first 1 - ``test_share`` of
    ``n_examples`` held-out Rule 110 examples and scored on the rest. Returns {read: [n_labels] fraction
    right}, ``model``: the model's own accuracy per label on the same test examples, ``majority``: the
    fraction right by always answering the fit split's more common label, each with ``*_se`` (binomial
    standard error), and ``test_examples``. ``task_config``: the model's own by default."""
    if getattr(model, "task", "rule110") != "rule110":
        raise ValueError(f"probe_answer reads Rule 110 labels; this model was trained on {model.task!r}")
    batch = held_out("rule110", task_config or model.task_config, n_examples)
    labels = batch.meta["labels"]                                               # [B, n]
    parts = [query_reads(model, batch.tokens[s:s + chunk].to(model.device), n_sleep)
             for s in range(0, n_examples, chunk)]
    reads, states = torch.cat([p["reads"] for p in parts]), torch.cat([p["states"] for p in parts])
    logits = torch.cat([p["logits"] for p in parts])
    n = labels.shape[1]
    g = torch.Generator().manual_seed(seed)
    heads, dim = states.shape[2], states.shape[3]
    keys = F.normalize(torch.randn(heads, dim, random_keys, generator=g), dim=1)  # [H, K, m]
    random_read = read_at_queries(states.transpose(0, 1), keys)                    # [B, G*H*m*V]
    fit = slice(0, round(n_examples * (1 - test_share)))
    test = slice(fit.stop, n_examples)
    features = {"own": lambda j: reads[:, j], "other": lambda j: reads[:, (j + 1) % n],
                "random": lambda j: random_read}
    table = {"test_examples": test.stop - test.start, "n_sleep": n_sleep or model.config.n_sleep}
    for name, x in features.items():
        table[name] = torch.stack([ridge_hits(x(j)[fit], labels[fit, j:j + 1], x(j)[test],
                                              labels[test, j:j + 1])[:, 0].double().mean() for j in range(n)])
    table["model"] = (logits[test, :n].argmax(-1) == labels[test]).double().mean(0)
    table["majority"] = ((labels[fit].double().mean(0) > 0.5) == labels[test].bool()).double().mean(0)
    m = table["test_examples"]
    for name in (*READS, "model", "majority"):
        table[f"{name}_se"] = (table[name] * (1 - table[name]) / m).sqrt()
    return table


NEAR_MODEL, ABOVE_OTHERS = 5.0, 10.0  # points, the two tests written before the evaluation (docs/results.md)


def table(report: dict) -> list[dict]:
    """One row per model of a :func:`main` report: each read's accuracy and the model's, averaged over
    the labels, and the two tests: ``holds`` (the own read within NEAR_MODEL points of the model
    and ABOVE_OTHERS above the random keys) and ``own_key`` (ABOVE_OTHERS above another query's key)."""
    rows = []
    for cell, entry in report.get("models", {}).items():
        mean = {k: sum(entry[k]) / len(entry[k]) for k in (*READS, "model", "majority")}
        points = lambda a, b: 100 * (mean[a] - mean[b])                # noqa: E731
        rows.append({"cell": cell, "n_sleep": entry["n_sleep"], **mean,
                     "holds": points("model", "own") <= NEAR_MODEL and points("own", "random") >= ABOVE_OTHERS,
                     "own_key": points("own", "other") >= ABOVE_OTHERS})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sleeplab.lab.query_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="fixed-N Rule 110 checkpoints (.sleeplab)")
    parser.add_argument("--examples", type=int, default=2048)
    parser.add_argument("--out", default=None, help="JSON file for the table (default: print only)")
    args = parser.parse_args(argv)
    from ..api import load
    report = {}
    for path in args.checkpoints:
        answer = probe_answer(load(path, device="cpu"), args.examples)
        report[Path(path).stem] = {k: v.tolist() if torch.is_tensor(v) else v for k, v in answer.items()}
        print(Path(path).stem, " ".join(f"{k} {100 * sum(answer[k].tolist()) / len(answer[k]):.1f}%"
                                        for k in (*READS, "model", "majority")), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"command": "python -m sleeplab.lab.query_probe " + " ".join(sys.argv[1:] if argv is None else argv),
                                              "examples": args.examples, "models": report}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
