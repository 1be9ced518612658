"""sleeplab: run, see and extend the sleep mechanism of *Language Models Need Sleep*.

The small public surface notebooks and users need; everything else lives in named modules.
"""
from .api import evaluate, load
from .model import SleepLM, SleepLMConfig
from .presets import PRESETS, preset
from .sleep import parallel_forward, sleep_forward, window_plan
from .streaming import StreamingRunner

__version__ = "0.1.0"


def build_model(name: str = "sleep", **overrides) -> SleepLM:
    """A fresh model from a preset: ``build_model("hybrid", d_model=256)``."""
    return SleepLM(preset(name, **overrides))


__all__ = ["SleepLM", "SleepLMConfig", "PRESETS", "preset", "build_model", "sleep_forward",
           "parallel_forward", "window_plan", "StreamingRunner", "load", "evaluate"]
