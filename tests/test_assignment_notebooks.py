"""Each assignment notebook, run in a real kernel: blank, its check cell fails with the friendly message;
with a cheat that calls sleeplab's implementation, it fails naming what was called; with the reference
solution pasted into the stub cell, every cell passes. (The repository's nbval run skips these notebooks:
see notebooks/assignments/conftest.py.)"""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ASSIGNMENTS = Path(__file__).resolve().parents[1] / "notebooks" / "assignments"

# notebook, solution file, and cheats: (stub source that delegates, what the message must name)
CASES = {
    "01_gated_delta_rule": ("gated_delta_rule", [
        ("def gated_delta_rule(q, k, v, g, beta, scale=None, initial_state=None):\n"
         "    return reference_rule(q, k, v, g, beta, scale=scale, initial_state=initial_state,\n"
         "                          output_final_state=True)", "sleeplab.ops.gated_delta_rule")]),
    "02_sleep_loop": ("sleep_loop", [
        ("def sleep_loop(model, tokens, loss_mask, n_sleep):\n"
         "    return sleeplab.sleep_forward(model, tokens, loss_mask, n_sleep=n_sleep)", "sleeplab.sleep_forward"),
        ("def sleep_loop(model, tokens, loss_mask, n_sleep):\n"      # the model's forward runs sleep_forward
         "    return model._model(tokens, loss_mask, n_sleep=n_sleep)", "sleeplab.sleep_forward")]),
    "03_sliding_eviction": ("sliding_eviction", [
        ("from types import SimpleNamespace\n\n"
         "def sliding_evict(kvs, window):\n"
         "    return sleeplab.sleep.evict(SimpleNamespace(eviction='sliding', window=window), kvs)\n\n"
         "def sliding_mask(q_len, past_len, window):\n"
         "    return sleeplab.layers.band_mask(q_len, past_len + q_len, window)", "sleeplab.sleep.evict")]),
    "04_probe_s": ("ridge_probe", [
        ("def ridge_fit(x, y, lam):\n"
         "    return probe.ridge_hits(x, y, x, y), None\n\n"
         "def probe_accuracy(w, b, x, y):\n"
         "    return w", "sleeplab.lab.probe.ridge_hits")]),
}


def _error(run) -> str:
    with pytest.raises(CellExecutionError) as err:
        run()
    return str(err.value)


@pytest.mark.parametrize("name", sorted(CASES))
def test_assignment_fails_blank_refuses_cheats_and_passes_solved(name):
    solution, cheats = CASES[name]
    nb = nbformat.read(ASSIGNMENTS / f"{name}.ipynb", as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    stub = next(i for i in code if "# YOUR CODE HERE" in nb.cells[i].source)
    check = next(i for i in code if "grading.check_" in nb.cells[i].source)
    assert stub < check
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(ASSIGNMENTS)}})
    with client.setup_kernel():
        for i in code:
            if i < stub:
                client.execute_cell(nb.cells[i], i)

        def attempt(source):
            nb.cells[stub].source = source
            client.execute_cell(nb.cells[stub], stub)
            client.execute_cell(nb.cells[check], check)

        blank = nb.cells[stub].source
        assert "is not implemented yet" in _error(lambda: attempt(blank))
        for cheat, called in cheats:
            message = _error(lambda: attempt(cheat))
            assert "DelegationError" in message and f"your function calls {called}" in message
        attempt((ASSIGNMENTS / "solutions" / f"{solution}.py").read_text())
        assert "✅" in "".join(o.get("text", "") for o in nb.cells[check].outputs)
        for i in code:
            if i > check:
                client.execute_cell(nb.cells[i], i)
