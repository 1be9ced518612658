"""benchmarks/throughput.py records what docs quote, and the steady-state fields, in its tiny CPU mode.
Speeds are not checked: on a shared CPU they mean nothing."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUOTED = {"impl", "op_mode", "compiled", "n_sleep", "device", "card", "tokens_per_s", "mfu", "ms_per_step", "batch_size",
          "seq_len", "d_model", "params", "steps_timed", "final_loss", "torch", "python", "code", "command"}


def bench(*args, check=True):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--device", "cpu", "--tiny",
                           "--n-sleep", "1", "--warm-steps", "1", "--warm-s", "0", "--window-s", "0.5", "--windows",
                           "2", *args], check=check, cwd=ROOT, capture_output=True, text=True)


def test_tiny_cpu_benchmark_records_windows_timed_seconds_and_the_end_to_end_run(tmp_path):
    out = tmp_path / "throughput.json"
    bench("--end-to-end", "--e2e-steps", "4", "--e2e-eval-every", "2", "--e2e-eval-size", "8", "--out", str(out))
    records = {r["impl"]: r for r in json.loads(out.read_text())}
    assert sorted(records) == ["eager", "sleeplab", "train --fast"]
    for impl in ("eager", "sleeplab"):
        rec = records[impl]
        assert QUOTED <= rec.keys()
        assert len(rec["code"]["commit"]) == 40   # the commit the numbers came from (a git checkout here)
        assert len(rec["windows"]) == 2 and all(w["seconds"] >= 0.5 and w["steps"] >= 1 for w in rec["windows"])
        assert rec["timed_s"] == sum(w["seconds"] for w in rec["windows"])
        assert rec["steps_timed"] == sum(w["steps"] for w in rec["windows"])
    e2e = records["train --fast"]
    assert [r["step"] for r in e2e["evaluations"]] == [0, 2, 4]
    assert e2e["steps_timed"] == 2 and e2e["timed_s"] > 0 and e2e["tokens_per_s_from_step_0"] > 0
    assert e2e["train_config"]["fast"] and e2e["train_config"]["model_args"]["d_model"] == records["sleeplab"]["d_model"]


def test_records_measured_before_a_failure_are_kept(tmp_path):
    """A device command's time limit can kill the run at its last, longest measurement; what it had
    measured must already be on disk. Here the end-to-end run fails (too few evaluations for a rate)
    after both bare steps were timed."""
    out = tmp_path / "throughput.json"
    run = bench("--end-to-end", "--e2e-steps", "2", "--e2e-eval-every", "2", "--e2e-eval-size", "8",
                "--out", str(out), check=False)
    assert run.returncode != 0 and "the rate needs at least 3" in run.stderr
    assert sorted(r["impl"] for r in json.loads(out.read_text())) == ["eager", "sleeplab"]


def test_op_mode_records_sit_beside_the_chunk_records_not_over_them(tmp_path):
    """At N = 1 "triton" runs the chunk path (the whole sequence is past the kernel's 64 tokens), so this
    needs no kernel; what it checks is that a second run's triton records merge in beside the chunk ones,
    and that a rerun of chunk replaces its own record."""
    out = tmp_path / "throughput.json"
    bench("--impl", "sleeplab", "--out", str(out))
    bench("--impl", "sleeplab", "eager", "--op-mode", "chunk", "triton", "--out", str(out))
    listed = json.loads(out.read_text())
    assert sorted((r["impl"], r["op_mode"]) for r in listed) == [
        ("eager", "chunk"), ("sleeplab", "chunk"), ("sleeplab", "triton")]
    assert all(r["command"].endswith("--op-mode chunk triton --out " + str(out)) for r in listed)


def test_profile_summary_counts_kernels_a_step_by_family_without_annotation_ranges():
    import importlib.util
    from types import SimpleNamespace
    spec = importlib.util.spec_from_file_location("profile_step", ROOT / "benchmarks" / "profile_step.py")
    profile_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(profile_step)
    cuda, cpu = SimpleNamespace(name="CUDA"), SimpleNamespace(name="CPU")

    def event(name, us, device=cuda, annotation=False):
        return SimpleNamespace(name=name, device_time_total=us, device_type=device, is_user_annotation=annotation)
    events = [event("triton_poi_fused_add_0", 8), event("triton_poi_fused_mul_1", 8), event("_gdn_fwd", 100),
              event("sm90_xmma_gemm_bf16", 10), event("Optimizer.step#AdamW.step", 500),
              event("ProfilerStep", 900, annotation=True), event("aten::mm", 50, device=cpu)]
    s = profile_step.summarize(events, steps=2)
    assert s["kernels"] == 2 and s["kernel_ms"] == 126 / 2 / 1e3
    assert list(s["families"]) == ["gdn (sleeplab triton)", "fused (inductor)", "matmul"]   # by time
    assert s["families"]["fused (inductor)"] == {"kernels": 1, "ms": 8e-3, "us_each": 8}


def test_step_noise_records_every_change_against_the_unperturbed_run(tmp_path):
    out = tmp_path / "step_noise.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_noise.py"), "--n-sleep", "1", "--steps", "3",
                    "--batch-size", "4", "--out", str(out)], check=True, cwd=ROOT, capture_output=True)
    (record,) = json.loads(out.read_text())
    assert record["card"].startswith("cpu") and record["steps"] == 3 and record["n_sleep"] == 1
    gaps = {r["change"]: r["weight_gap"] for r in record["rows"]}
    assert len(gaps) == 6 and all(g > 0 for g in gaps.values())   # every change reached the weights
    assert gaps["both rates x 1.1"] > gaps["weights x (1 + 1e-07 noise)"]
