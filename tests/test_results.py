"""sleeplab.repro.results: finding the shipped data, reading it robustly, and the paper's reference numbers."""
import json

import pytest

from sleeplab.repro import results, tables


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(results.DATA_ENV, raising=False)


def write_curves(folder, curves):
    (folder / "results").mkdir(parents=True, exist_ok=True)
    (folder / "results" / "curves.json").write_text(json.dumps(curves))
    return folder


CURVE = {"cell": "rule110-t8-n2", "card": "test card", "done": True,
         "config": {"task": "rule110", "task_args": {"t": 8}, "preset": "sleep", "tokens": "1M",
                    "model_args": {"d_model": 32, "n_sleep": 2}},
         "points": [{"step": 10, "tokens": 1000, "exact": 0.5, "per_label": 0.8, "n_sleep": 2},
                    {"step": 0, "tokens": 0, "exact": 0.0, "per_label": 0.5, "n_sleep": 2}]}


def test_finds_the_repository_data(no_env):
    folder = results.data_dir()
    assert (folder / "results" / "curves.json").is_file()
    assert folder == results._candidates()[0]            # beside the package, whatever the cwd


def test_env_var_wins_and_bad_env_var_names_the_path(monkeypatch, tmp_path):
    write_curves(tmp_path, [CURVE])
    monkeypatch.setenv(results.DATA_ENV, str(tmp_path))
    assert results.data_dir() == tmp_path
    assert list(results.load_curves()) == ["rule110-t8-n2"]
    monkeypatch.setenv(results.DATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        results.data_dir()


def test_missing_data_names_every_path_tried(no_env, monkeypatch, tmp_path):
    monkeypatch.setattr(results, "_candidates", lambda: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(FileNotFoundError) as err:
        results.data_dir()
    assert str(tmp_path / "a") in str(err.value) and str(tmp_path / "b") in str(err.value)
    assert "git clone" in str(err.value)


def test_missing_results_file_lists_what_exists(monkeypatch, tmp_path):
    write_curves(tmp_path, [CURVE])
    monkeypatch.setenv(results.DATA_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"other\.json.*curves\.json"):
        results.results_file("other.json")
    with pytest.raises(FileNotFoundError, match="checkpoints"):
        results.checkpoints()


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"cell": "x"}', "JSON list"),
    ('[{"points": []}]', "'cell' name"),
    ('[{"cell": "x", "points": []}]', "non-empty"),
    ('[{"cell": "x", "points": [{"step": 0}]}]', "lacks"),
    ('[{"cell": "x", "points": [{"step": 0, "tokens": 0, "exact": 0}]},'
     ' {"cell": "x", "points": [{"step": 0, "tokens": 0, "exact": 0}]}]', "twice"),
    ('[{"cell": "x", "points": [{"step": 0, "tokens": 0, "exact": 0}], "earlier": {}}]', "list of curves"),
    ('[{"cell": "x", "points": [{"step": 0, "tokens": 0, "exact": 0}], "earlier": [{"points": [{"step": 0}]}]}]',
     "earlier run 0: a point lacks"),
])
def test_malformed_curves_are_reported_with_the_file(tmp_path, content, message):
    path = tmp_path / "curves.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        results.load_curves(path)
    assert str(path) in str(err.value)


def test_points_sorted_and_table_rows(tmp_path):
    path = write_curves(tmp_path, [CURVE]) / "results" / "curves.json"
    curves = results.load_curves(path)
    assert [p["step"] for p in curves["rule110-t8-n2"]["points"]] == [0, 10]
    (row,) = results.final_table(curves)
    assert row["t"] == 8 and row["n_sleep"] == 2 and row["exact"] == 0.5 and row["card"] == "test card"
    assert row["command"] == "python -m sleeplab.repro run rule110-t8-n2"
    text = results.format_table([row])
    assert "50.0%" in text and "rule110-t8-n2" in text
    assert results.at_tokens(curves["rule110-t8-n2"], 999)["step"] == 0
    with pytest.raises(KeyError, match="shipped cells"):
        results.final_table(curves, cells=["nope"])


def test_shipped_curves_and_checkpoints(no_env):
    curves = results.load_curves()
    for t in (8, 12):
        for n in (1, 2, 4):
            c = curves[f"rule110-t{t}-n{n}"]
            assert c["card"] and c["done"] and results.cell_info(c)["n_sleep"] == n
    assert results.cell_info(curves["rule110-t8-nvar"])["n_sleep"] == "1..4"
    depth = tables.depth_table(curves)                  # every depth cell reached the 100 M budget
    assert [(r["t"], r["n_sleep"]) for r in depth] == [(t, n) for t in (4, 8, 12, 16) for n in (1, 2, 4)]
    assert all(0 <= r["exact"] <= 1 for r in depth)
    have = results.checkpoints()
    assert {"rule110-t8-n1-41M", "rule110-t8-n2-41M", "rule110-t8-n4-41M", "rule110-t8-nvar", "study-t12-n4-paper-s0",
            "study-t12-n1-paper-s1-400M", "study-t12-n2-paper-s0-400M", "study-t12-n4-paper-s0-400M"} <= set(have)
    with pytest.raises(FileNotFoundError, match="shipped"):
        results.checkpoint_path("rule110-t99-n1")


def test_load_model_carries_its_provenance(no_env):
    model = results.load_model("rule110-t8-n2-41M", device="cpu")
    assert model.task == "rule110" and model.task_config.t == 8 and model.config.n_sleep == 2


def test_standard_error():
    assert results.standard_error(0.5, 100) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        results.standard_error(0.5, 0)


def test_paper_numbers_are_consistent():
    fig2b = results.PAPER["rule110_fig2b"]
    assert fig2b["t"] == 32 and fig2b["exact"][1] < fig2b["exact"][2] < fig2b["exact"][3]
    fig4 = results.PAPER["gsm_fig4"]
    for name, m in fig4["models"].items():
        for ops, by_n in m["by_n"].items():
            assert tuple(sorted(by_n)) == m["n_sleep"], name
            lo, hi = m["stated"][ops]
            assert str(by_n[lo]) in fig4["quote"] and str(by_n[hi]) in fig4["quote"]
        for ops, printed in m["unmapped"].items():
            assert len(printed) == len(m["n_sleep"]) and list(printed) == sorted(printed, reverse=True)


def _manifest_sample():
    """The shipped checkpoints to re-check: the lowest and the highest N of MANIFEST.json."""
    path = results.data_dir() / "checkpoints" / "MANIFEST.json"
    entries = sorted(json.loads(path.read_text()), key=lambda e: e["n_sleep"])
    return [entries[0], entries[-1]] if len(entries) > 1 else entries


@pytest.mark.parametrize("entry", _manifest_sample(), ids=lambda e: e["file"])
def test_shipped_checkpoint_scores_what_the_manifest_states(entry, no_env):
    """256 examples of the fixed held-out set, at the checkpoint's own N, within 4 standard errors
    of the manifest's stated accuracy (measured on many more), and the file is the one it hashed."""
    import hashlib

    import sleeplab
    from sleeplab.device import single_thread
    from sleeplab.tasks import held_out
    path = results.data_dir() / "checkpoints" / entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    model = sleeplab.load(path)
    n = 256
    with single_thread():
        got = sleeplab.evaluate(model, held_out(model.task, model.task_config, n), n_sleep=entry["n_sleep"])
    stated = entry["heldout"]["exact"]
    allowed = 4 * max(results.standard_error(stated, n), 1 / n)  # 1/n: one example, for p near 0 or 1
    assert abs(got["exact"] - stated) <= allowed, (got["exact"], stated)


def test_every_shipped_checkpoint_is_in_the_manifest_with_its_commit(no_env):
    folder = results.data_dir() / "checkpoints"
    entries = json.loads((folder / "MANIFEST.json").read_text())
    assert sorted(e["file"] for e in entries) == sorted(p.name for p in folder.glob("*.sleeplab"))
    assert all(e["code"]["commit"] for e in entries), [e["file"] for e in entries if not e["code"]["commit"]]
