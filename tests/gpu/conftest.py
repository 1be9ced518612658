"""The GPU suite reuses the CPU suite's helpers (``from test_checkpoint import tiny``): pytest puts only
this folder on sys.path when it is run alone, so the folder above goes there too."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
