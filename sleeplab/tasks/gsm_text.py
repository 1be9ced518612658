"""How a GSM-Infinite problem reads: the vocabulary and the token strings of variables, statements and
questions, in either rendering ("symbolic": ``V042 = V017 + 1 .``; "words": ``Ada has 1 more apples than
Bo has beads .``). The problem itself (its dependency graph and values) is made in ``gsm.py``."""
from __future__ import annotations

import functools

# Our own names and items (words rendering): 24 x 24 = 576 variables.
NAMES = ("Ada Bo Cy Dee Eli Fay Gus Hal Ivy Jo Kai Lu Max Nia Oz Pia Quin Rex Sol Tia Uma Vic Wes Zed").split()
ITEMS = ("apples beads cards dice eggs figs gems hats inks jars keys limes maps nuts oars pens quills "
         "rings seeds tiles urns vases wands yarns").split()
VOCAB = (["<pad>", "<q>", "<ans>"] + [str(d) for d in range(10)] + ["V", "=", "+", "-", ".", "?"]
         + "has as many more fewer than and together how does have".split() + NAMES + ITEMS)
ID = {s: i for i, s in enumerate(VOCAB)}
PAD, ANS = ID["<pad>"], ID["<ans>"]


class _Names:
    """Token strings of variable v: ("V", "0", "4", "2") or (name, item). Symbolic names are made on
    demand (up to 10**6 of them); the 576 word names are built once."""
    WORDS = tuple((n, i) for n in NAMES for i in ITEMS)

    def __init__(self, rendering: str, digits: int):
        self.symbolic, self.fmt = rendering == "symbolic", f"0{digits}d"

    def __getitem__(self, v: int) -> tuple:
        return ("V", *format(v, self.fmt)) if self.symbolic else self.WORDS[v]


@functools.lru_cache(maxsize=8)
def _names(rendering: str, digits: int) -> _Names:
    return _Names(rendering, digits)


def var(config, v: int) -> list[str]:
    return list(_names(config.rendering, config.name_digits)[v])


def statement(config, st) -> list[str]:
    """Token strings of one statement (target, op, args)."""
    x, op, args = st
    names = _names(config.rendering, config.name_digits)
    if config.rendering == "symbolic":
        if op == "const":
            rhs = [str(args[0])]
        elif op == "add":
            rhs = [*names[args[0]], "+", *names[args[1]]]
        else:
            rhs = [*names[args[0]], *SYMBOLIC_TAIL[op]]
        return [*names[x], "=", *rhs, "."]
    n, i = names[x]
    if op == "const":
        return [n, "has", str(args[0]), i, "."]
    a = names[args[0]]
    if op == "add":
        b = names[args[1]]
        return [n, "has", "as", "many", i, "as", a[0], "has", a[1], "and", b[0], "has", b[1], "together", "."]
    return [n, "has", *WORDS_HEAD[op], i, "than" if op != "copy" else "as", a[0], "has", a[1], "."]


SYMBOLIC_TAIL = {"copy": (), "add1": ("+", "1"), "sub1": ("-", "1")}
WORDS_HEAD = {"copy": ("as", "many"), "add1": ("1", "more"), "sub1": ("1", "fewer")}


def question(config, v: int) -> list[str]:
    if config.rendering == "symbolic":
        return ["<q>"] + var(config, v) + ["?"]
    n, i = var(config, v)
    return ["<q>", "how", "many", i, "does", n, "have", "?"]
