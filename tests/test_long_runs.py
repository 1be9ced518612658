"""Long runs (the paper's t = 32 Figure 2b): compact exports kept at token milestones, and the grid
that runs N = 1..4 one per GPU."""
from pathlib import Path

import pytest

import sleeplab
from sleeplab.train import train
from sleeplab.train.config import TrainConfig, recipe
from sleeplab.train.sweep import expand, read_grid

GRID = Path(__file__).resolve().parents[1] / "sleeplab" / "repro" / "grids" / "fig2b_t32.toml"


def test_export_at_keeps_a_compact_checkpoint_at_each_budget(tmp_path):
    cfg = recipe(steps=12, eval_every=6, out=str(tmp_path / "run"))
    per_step = cfg.tokens_per_step()
    cfg = recipe(cfg, export_at=[per_step * 4, f"{per_step * 9 / 1000:.3f}k"])
    assert cfg.export_steps() == {4: str(per_step * 4), 9: f"{per_step * 9 / 1000:.3f}k"}
    train(cfg)
    exports = sorted((tmp_path / "run").glob("export-*.sleeplab"))
    assert len(exports) == 2
    steps = sorted(sleeplab.load(p).manifest["step"] for p in exports)
    assert steps == [4, 9]


@pytest.mark.parametrize("bad", ["1B", ["many"]])
def test_bad_export_budget_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match="export_at|many"):
        TrainConfig(export_at=bad)


def test_fig2b_grid_has_one_run_per_n_at_t32_with_the_papers_recipe():
    runs = expand(read_grid(GRID), GRID.parent)
    assert [cfg.model_config().n_sleep for _, cfg in runs] == [1, 2, 3, 4]
    for _, cfg in runs:
        assert cfg.task_args == {"t": 32} and cfg.tokens == "5B" and (cfg.muon_lr, cfg.adam_lr) == (2e-3, 5e-5)
        assert cfg.export_at == ["1B", "2B"] and cfg.eval_every * cfg.tokens_per_step() == pytest.approx(100e6, rel=1e-3)
