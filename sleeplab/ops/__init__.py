"""Fast-weight update rules (pure PyTorch, fla-compatible shapes), each with a chunked parallel form and a
token-by-token oracle.

Every entry of ``RULES`` takes the same arguments,
    (q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False, mode="chunk", chunk_size=64)
and returns ``(o, final_state)``. For "delta" the g argument is accepted and ignored (no decay).
``compute_dtype`` is the one rule for the dtype of a fast-weight state, here and in the model.
"""
from sleeplab.ops._chunk import compute_dtype
from sleeplab.ops.gated_delta import gated_delta_rule
from sleeplab.ops.rules import delta_rule, delta_rule_ignoring_g, hebbian_rule

RULES = {
    "gated_delta": gated_delta_rule,
    "delta": delta_rule_ignoring_g,
    "hebbian": hebbian_rule,
}

__all__ = ["gated_delta_rule", "hebbian_rule", "delta_rule", "RULES", "compute_dtype"]
