"""Under pytest-xdist (.ci/run: ``-n`` one worker per core) each worker, and every notebook kernel,
Jupyter server or training subprocess it starts, keeps to one torch thread: a second thread would
wait for the core the other worker holds (measured: notebook 08's 14 s evaluation cell took 189 s
with two threads per worker). Here at the root, so that ``pytest notebooks/`` gets it too, and before
anything imports torch, which reads the variable once."""
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
