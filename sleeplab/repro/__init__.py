"""The reproduction of the paper's claims: the cells and the code that runs, collects and checks them
(``cells``, ``python -m sleeplab.repro``), the shipped results (``results``), their tables and figures,
and the paper's own numbers (``paper``). Built on the core and ``sleeplab.train``; nothing in the core
imports it."""
