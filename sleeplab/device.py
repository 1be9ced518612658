"""The one place that decides where tensors live and in which precision.

Everything else asks this module; nothing else in sleeplab touches ``torch.cuda`` directly, so the
package imports and runs on a CPU-only machine (CI, laptops, Colab without a GPU).
"""
from __future__ import annotations

import contextlib
import os

import torch


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """``prefer`` wins when given ("cpu", "cuda", "cuda:1"); else $SLEEPLAB_DEVICE; else CUDA if present."""
    choice = prefer if prefer is not None else os.environ.get("SLEEPLAB_DEVICE")
    if choice is not None:
        try:
            dev = torch.device(choice)
        except (RuntimeError, TypeError):
            raise ValueError(f"device {str(choice)!r} is not known; allowed: 'cpu', 'cuda', 'cuda:N'") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(choice)!r} was asked for but CUDA is not available; use 'cpu'")
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"device {str(choice)!r} is not supported; allowed: 'cpu', 'cuda', 'cuda:N'")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (the paper-scale runs); float32 on CPU, where bf16 is slow and noisy."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def cpu_threads(count: int | None):
    """torch's CPU thread count set to ``count`` inside, restored after (None: left alone)."""
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def single_thread(device: torch.device = torch.device("cpu")):
    """Run CPU work on one thread. A multi-threaded kernel waits for its slowest thread, and on a busy
    machine (CI, a laptop with a browser open) one descheduled thread adds a whole scheduler time
    slice (~10-30 ms) to a call: small ops measured 100x slower that way. One thread measures the
    algorithm, not the scheduler, and for the tiny matrices of the capacity experiments it is faster."""
    return cpu_threads(1 if device.type == "cpu" else None)


def fast_matmul(device: torch.device) -> None:
    """On CUDA let float32 matmuls (the fast-weight state math) use TF32 tensor cores."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so host clocks measure it (benchmarks only)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def card_name(device: torch.device) -> str:
    """Human-readable name of the accelerator, recorded beside every number we publish."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} threads)"


def device_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cuda_graph(device: torch.device):
    """A fresh ``torch.cuda.CUDAGraph`` (fast training path); raises on CPU."""
    if device.type != "cuda":
        raise ValueError(f"CUDA graphs need a CUDA device, got {device}")
    return torch.cuda.CUDAGraph()


def graph_capture(graph, pool=None):
    return torch.cuda.graph(graph, pool=pool)


def side_stream_warmup(device: torch.device):
    """Context for warm-up iterations on a side stream before graph capture, as CUDA graphs require."""
    stream = new_stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    return torch.cuda.stream(stream), stream


def wait_stream(device: torch.device, stream) -> None:
    torch.cuda.current_stream(device).wait_stream(stream)


def new_stream(device: torch.device):
    return torch.cuda.Stream(device)


def use_stream(stream):
    return torch.cuda.stream(stream)


def hand_over(tensors, device: torch.device) -> None:
    """Tensors made on a side stream and used on the current one: tell the allocator, so their memory
    is not reused by the side stream before the current stream is done with them."""
    current = torch.cuda.current_stream(device)
    for t in tensors:
        t.record_stream(current)
