"""Refusing delegation: a solution that calls the reference (or sleeplab's own implementation) instead
of computing the answer must fail, with a message naming what it called.

Two checks, because each misses what the other sees:

* before the run, the student's code objects (the function, its nested functions and lambdas) are
  searched for global names and closure cells bound to a forbidden callable; this catches a call on a
  branch the checker's inputs never take;
* during the run, every binding of a forbidden callable that the student can reach (its globals and
  the attributes of every loaded ``sleeplab`` module, e.g. ``sleeplab.sleep_forward`` and the model's
  own ``forward``, which imports it) is swapped for a sentinel that raises; this catches an attribute
  chain (``sleeplab.ops.gated_delta_rule``) or a call through a helper the student wrote.
"""
from __future__ import annotations

import contextlib
import sys
import types
from unittest import mock

class DelegationError(AssertionError):
    """The student's function called a forbidden reference."""


def _message(what: str, name: str) -> str:
    return (f"your function calls {what} (as `{name}`): that is the reference the checker compares "
            f"against, so the check would prove nothing. Write the computation yourself; you may use "
            f"torch, but not sleeplab's implementation of what you are asked to build.")


def _code_objects(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _forbidden_name(value, forbidden: dict) -> str | None:
    return next((what for what, obj in forbidden.items() if value is obj), None)


def static_check(student_fn, forbidden: dict) -> None:
    """Raise DelegationError when ``student_fn``'s code names a global, or closes over a value, that
    is one of ``forbidden`` ({"sleeplab.x.f": f})."""
    code = getattr(student_fn, "__code__", None)
    if code is None:
        raise AssertionError(f"expected a Python function you wrote, got {type(student_fn).__name__} "
                             f"{student_fn!r}")
    namespace = getattr(student_fn, "__globals__", {})
    for sub in _code_objects(code):
        for name in sub.co_names:
            what = _forbidden_name(namespace.get(name), forbidden) if name in namespace else None
            if what:
                raise DelegationError(_message(what, name))
    for name, cell in zip(code.co_freevars, student_fn.__closure__ or ()):
        with contextlib.suppress(ValueError):  # an empty cell
            what = _forbidden_name(cell.cell_contents, forbidden)
            if what:
                raise DelegationError(_message(what, name))


def _sentinel(what: str, name: str, calls: list):
    def refuse(*args, **kwargs):
        calls.append((what, name))
        raise DelegationError(_message(what, name))
    return refuse


@contextlib.contextmanager
def sentinels(student_fn, forbidden: dict):
    """While active, every reachable binding of a ``forbidden`` callable raises DelegationError when
    called. Yields the list of (what, name) calls made, so a student who catches the error still fails."""
    calls: list = []
    with contextlib.ExitStack() as stack:
        owners = [m for n, m in list(sys.modules.items()) if n == "sleeplab" or n.startswith("sleeplab.")]
        for module in owners:
            for attr, value in list(vars(module).items()):
                what = _forbidden_name(value, forbidden)
                if what:
                    stack.enter_context(mock.patch.object(module, attr, _sentinel(what, attr, calls)))
        namespace = getattr(student_fn, "__globals__", None)
        if namespace is not None:
            swaps = {n: _sentinel(w, n, calls) for n, v in list(namespace.items())
                     if (w := _forbidden_name(v, forbidden))}
            stack.enter_context(mock.patch.dict(namespace, swaps))
        yield calls


def run_refusing(student_fn, forbidden: dict, call):
    """``call()`` (which runs ``student_fn``) with the forbidden references refused both ways."""
    static_check(student_fn, forbidden)
    with sentinels(student_fn, forbidden) as calls:
        result = call()
    if calls:
        what, name = calls[0]
        raise DelegationError(_message(what, name))
    return result
