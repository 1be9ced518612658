"""Invariants of the probe report: its shapes follow each model's N and t, it survives the JSON file,
its figure shows what the JSON holds, and it refuses what it was not built for. Tiny models stand in
for the shipped checkpoints, so this runs in seconds."""
import pytest
import torch

from sleeplab.lab import probe_report
from sleeplab.model import SleepLM
from sleeplab.presets import preset
from sleeplab.tasks import rule110

TASK = rule110.Config(t=2, n_states=2, width=12)   # two 12-token windows, then 2 query tokens
PASSES = {"rule110-t8-n1-41M": 1, "rule110-t8-n4-41M": 3}


def make(n_sleep: int, seed: int = 0) -> SleepLM:
    torch.manual_seed(seed)
    cfg = preset("sleep", vocab_size=len(rule110.vocab(TASK)), d_model=16, n_heads=2, window=12,
                 max_positions=26, n_sleep=n_sleep)
    model = SleepLM(cfg).eval()
    model.task, model.task_config = "rule110", TASK     # what sleeplab.load attaches to a checkpoint
    return model


@pytest.fixture(scope="module")
def report():
    return probe_report.build(list(PASSES), n_examples=16, trace_examples=4, load=lambda name: make(PASSES[name]))


def test_every_per_pass_array_has_n_rows_and_every_table_t_plus_1_columns(report):
    assert list(report["checkpoints"]) == list(PASSES)
    for name, entry in report["checkpoints"].items():
        N, K = PASSES[name], TASK.t + 1
        assert entry["n_sleep"] == N and entry["t"] == TASK.t
        for key in ("h_rms", "token_cos", "s_change", "s_norm"):
            assert len(entry[key]) == N, key
        tables = entry["probe"]
        for key in ("h", "S", "h_se", "S_se"):
            assert [len(row) for row in tables[key]] == [K] * N, key
        assert torch.tensor(tables["S_cells"]).shape == (N, K, TASK.width)
        assert len(tables["majority"]) == K
        assert tables["test_windows"] == 4 * TASK.n_states        # a quarter of 16 examples, 2 windows each


def test_first_pass_change_of_s_is_a_number_although_window_0_starts_empty(report):
    # window 0's first pass has no S to be relative to; the mean over windows must skip it, not be NaN
    assert all(c == c and c > 0 for e in report["checkpoints"].values() for c in e["s_change"])


def test_report_records_how_it_was_made(report):
    assert report["command"].startswith("python -m sleeplab.lab.probe_report")
    assert report["device"] == "cpu" and report["torch"] == torch.__version__
    assert report["n_examples"] == 16 and report["commit"]
    # the stated accuracies come from the shipped MANIFEST.json, by name
    assert all(isinstance(e["exact_stated_points"], float) for e in report["checkpoints"].values())


def test_report_round_trips_through_its_json_file(report, tmp_path):
    path = probe_report.write(report, tmp_path / "probes.json")
    assert probe_report.read(path) == report


@pytest.mark.parametrize("source", ["S", "h"])
def test_figure_shows_the_probe_minus_majority_for_each_checkpoint(report, source):
    fig = probe_report.figure(report, source)
    assert len(fig.data) == len(report["checkpoints"])
    assert f"linear probe of {source} " in fig.layout.title.text
    for heatmap, entry in zip(fig.data, report["checkpoints"].values()):
        read, majority = (torch.tensor(entry["probe"][k], dtype=torch.float64) for k in (source, "majority"))
        expected = 100 * (read - majority)
        assert torch.allclose(torch.tensor(heatmap.z, dtype=torch.float64), expected)
        assert list(heatmap.y) == list(range(1, entry["n_sleep"] + 1))
    assert sum(bool(h.showscale) for h in fig.data) == 1                   # one colour bar for one scale


def test_unknown_checkpoint_is_refused_before_anything_loads_naming_the_allowed_ones():
    def never(name):
        raise AssertionError(f"loaded {name} although the list holds a name the report refuses")
    with pytest.raises(ValueError) as err:
        probe_report.build(["rule110-t8-n4-41M", "rule110-t8-nvar"], load=never)
    assert "'rule110-t8-nvar'" in str(err.value)
    assert all(name in str(err.value) for name in probe_report.PER_N)
    with pytest.raises(ValueError, match="none given"):
        probe_report.check_names([])


def test_too_few_examples_are_refused_naming_the_value():
    with pytest.raises(ValueError, match="n_examples=4"):
        probe_report.measure(make(1), n_examples=4)


def test_reading_a_missing_report_names_the_command_that_writes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m sleeplab.lab.probe_report"):
        probe_report.read(tmp_path / "absent.json")


def test_mlp_report_records_its_reader_and_keeps_every_shape():
    report = probe_report.build(["rule110-t8-n4-41M"], n_examples=16, trace_examples=4,
                                load=lambda name: make(PASSES[name]), reader="mlp")
    assert report["reader"] == "mlp"
    tables = report["checkpoints"]["rule110-t8-n4-41M"]["probe"]
    assert [len(row) for row in tables["h"]] == [TASK.t + 1] * PASSES["rule110-t8-n4-41M"]
    assert "one-hidden-layer probe of h" in probe_report.figure(report, "h").layout.title.text


def test_unknown_reader_or_source_is_refused_naming_the_allowed_ones(report):
    with pytest.raises(ValueError, match="reader='tree'.*'linear', 'mlp'"):
        probe_report.build(["rule110-t8-n4-41M"], reader="tree", load=lambda name: make(1))
    with pytest.raises(ValueError, match="source='x'"):
        probe_report.figure(report, "x")
