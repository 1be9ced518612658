"""What every assignment check shares: the tolerance, one CPU thread, seeds, relative error, and turning
a crash of the student's code into feedback."""
from __future__ import annotations

import functools
import random

from ...device import single_thread
from .refuse import DelegationError, run_refusing

TOL = 1e-5  # relative error; the checks run in float64, so a right answer is ~1e-15 off


def _single_threaded(check):
    """The checks use tiny float64 tensors: one CPU thread is enough, and on a busy machine it was
    ~50x faster than two threads waiting on each other (see ``sleeplab.device.single_thread``)."""
    @functools.wraps(check)
    def run(*args, **kwargs):
        with single_thread():
            return check(*args, **kwargs)
    return run


def _seed(seed):
    return random.randrange(2**31) if seed is None else seed


def _rel(a, b) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def _call(name, fn, seed, *args, refuse=None, **kwargs):
    """Run the student's function, turning crashes into feedback instead of a bare traceback; calls
    to any of ``refuse`` ({"sleeplab.x.f": f}, the references) fail with a message naming them."""
    try:
        return run_refusing(fn, refuse or {}, lambda: fn(*args, **kwargs))
    except (_Feedback, DelegationError):
        raise
    except NotImplementedError:
        raise AssertionError(f"{name} is not implemented yet: it raised NotImplementedError. "
                             "Replace the `raise NotImplementedError` line with your code.") from None
    except Exception as err:  # noqa: BLE001 - anything the student wrote may raise
        raise AssertionError(f"{name} raised {type(err).__name__}: {err}  (seed={seed})") from err


class _Feedback(AssertionError):
    """Raised from inside the student's run (e.g. the recorder spots a KV cache before it crashes)."""
