"""Training layer: run configs, the paper's optimiser, the training step, resumable checkpoints, ``train()``.

    from sleeplab.train import TINY_RULE110, recipe, train
    result = train(recipe(seed=1), on_eval=print)

``train``, ``RunResult``, ``SleepModule`` and ``make_trainer`` need Lightning, whose import takes
seconds, so they load on first use; ``import sleeplab`` stays quick.
"""
from .checkpoint import load_run, save_checkpoint
from .config import TINY_RULE110, TrainConfig, parse_count, recipe
from .loss import masked_cross_entropy, model_loss
from .optim import WarmupConstant, build_optimizers
from .step import EagerStep, make_step

_LIGHTNING = ("train", "RunResult", "SleepModule", "make_trainer")


def __getattr__(name):
    if name in _LIGHTNING:
        from . import module
        return getattr(module, name)
    raise AttributeError(f"module 'sleeplab.train' has no attribute {name!r}")


__all__ = ["TINY_RULE110", "TrainConfig", "parse_count", "recipe", "masked_cross_entropy", "model_loss",
           "WarmupConstant", "build_optimizers", "EagerStep", "make_step", "load_run", "save_checkpoint",
           *_LIGHTNING]
