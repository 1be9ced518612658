"""The GPU suite reuses the CPU suite's helpers (``from test_checkpoint import tiny``): pytest puts only
this folder on sys.path when it is run alone, so the folder above goes there too."""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# torch's structured-trace logger emits thousands of empty DEBUG records while inductor compiles; pytest
# captures them into every failing test's report, which pushed the tracebacks out of a device log's tail
logging.getLogger("torch.__trace").propagate = False
