"""Friendly checks for the course assignments (``notebooks/assignments``).

Each ``check_*`` runs the student's function and sleeplab's own implementation on fresh random inputs
(a new seed each call, printed in every message so a failure can be replayed with ``seed=``), and either
prints one success line or raises ``AssertionError`` saying what is wrong: which shape, at which token /
window / pass the first difference appears, by how much (relative error), and, where we can tell, which
common mistake reproduces your numbers.

A solution that calls the reference, or sleeplab's own implementation of what it is asked to build,
fails with a message naming what it called (``refuse``).
"""
from .eviction import check_sliding_eviction
from .gated_delta import check_gated_delta_rule
from .refuse import DelegationError
from .ridge import check_ridge
from .sleep_loop import check_sleep_loop

__all__ = ["check_gated_delta_rule", "check_sleep_loop", "check_sliding_eviction", "check_ridge",
           "DelegationError"]
