"""Friendly checks for the course assignments (``notebooks/assignments``).

Each ``check_*`` runs the student's function and sleeplab's own implementation on fresh random inputs
(a new seed each call, printed in every message so a failure can be replayed with ``seed=``), and either
prints one success line or raises ``AssertionError`` saying what is wrong: which shape, at which token /
window / pass the first difference appears, by how much (relative error), and, where we can tell, which
common mistake reproduces your numbers.
"""
from .gated_delta import check_gated_delta_rule
from .sleep_loop import check_sleep_loop

__all__ = ["check_gated_delta_rule", "check_sleep_loop"]
