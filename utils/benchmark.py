"""Inference benchmark: latency, load time and peak memory per model and backend, each in its own process.

The parent prepares random-weight models (and their exports, untimed), then runs every (model, backend)
measurement in a fresh interpreter (``tools/benchmark.py --worker SPEC``) and reads that child's peak
resident memory from ``os.wait4``.  A worker restores a random image of the requested size ``warmup`` times
untimed, then ``repeat`` times timed (tiled when a tile size is given).  Backends:

- ``dygraph``: the network in Paddle dygraph (what predict.py runs);
- ``inference``: the exported static graph under Paddle Inference with infer.py's default CPU configuration;
- ``onnx``: ONNX Runtime on the paddle2onnx model.

Other backend names produce a record with an ``error`` string.  Records are dicts with the keys in
``RECORD_KEYS`` (plus ``tile``, ``tile_overlap``, ``repeat``, ``mpix_per_s``, ``device``, ``error``,
``machine``).
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

RECORD_KEYS = ("model", "backend", "precision", "height", "width", "threads", "median_s", "min_s", "load_s",
               "peak_rss_mb")
BACKENDS = ("dygraph", "inference", "onnx")
RESULT_PREFIX = "BENCHMARK_RESULT "


def machine_info():
    """CPU model, core count, SIMD flags of interest, Paddle version (no Paddle import)."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name") and model in ("unknown", "x86_64", ""):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        from importlib.metadata import version

        paddle_version = version("paddlepaddle")
    except Exception:  # a GPU build or a source install has another distribution name
        paddle_version = None
    interesting = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "cores": cores, "flags": [f for f in interesting if f in flags],
            "python": platform.python_version(), "paddle": paddle_version}


def prepare(model, overrides, folder, backends, script):
    """Random weights (with config.yml) for ``model`` in ``folder`` and, when needed, its export.

    Returns {backend: error or None}: a failed export marks the backends that need it.
    """
    import paddle
    import yaml

    from networks import build_network

    cfg = {"name": model, **overrides}
    paddle.seed(0)
    net = build_network(cfg)
    paddle.save(net.state_dict(), os.path.join(folder, "weights.pdparams"))
    with open(os.path.join(folder, "config.yml"), "w", encoding="utf-8") as f:
        yaml.safe_dump({"network": cfg}, f)
    errors = {b: None for b in backends}
    if {"inference", "onnx"} & set(backends):
        cmd = [sys.executable, script, "--weights", os.path.join(folder, "weights.pdparams"),
               "--save-inference-dir", os.path.join(folder, "inference")] + (["--onnx"] if "onnx" in backends else [])
        res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, FLAGS_enable_pir_api="0"))
        if res.returncode:
            last = (res.stderr.strip().splitlines() or ["export failed"])[-1]
            errors.update({b: f"export failed: {last}" for b in ("inference", "onnx") if b in errors})
    return errors


def measure(spec, script, timeout=None):
    """Run one measurement in a child process; returns its record with peak_rss_mb from the child's rusage."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, script, "--worker", json.dumps(spec)], stdout=out,
                                stderr=subprocess.STDOUT, env=env, text=True)
        start = time.time()
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if timeout and time.time() - start > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    record = {k: spec.get(k) for k in RECORD_KEYS}
    record.update(tile=spec.get("tile"), tile_overlap=spec.get("tile_overlap"), repeat=spec["repeat"])
    lines = [ln for ln in text.splitlines() if ln.startswith(RESULT_PREFIX)]
    if lines:
        record.update(json.loads(lines[-1][len(RESULT_PREFIX):]))
    else:
        tail = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or [f"exit status {proc.returncode}"]
        record["error"] = f"worker failed (exit {proc.returncode}): {tail[0][:300]}"
    record["peak_rss_mb"] = round(usage.ru_maxrss / 1024.0, 1)  # Linux reports KiB
    return record


def worker(spec):
    """Child side of ``measure``: time one backend and print the result line."""
    import numpy as np

    from .inference import DygraphRunner, build_from_weights, make_runner, restore
    from .tiling import TilePlan

    t0 = time.perf_counter()
    folder, backend, threads = spec["folder"], spec["backend"], spec["threads"]
    if backend == "dygraph":
        import paddle

        paddle.set_device("cpu")
        run = DygraphRunner(build_from_weights(os.path.join(folder, "weights.pdparams"))[0])
    else:
        run = make_runner("paddle" if backend == "inference" else backend, os.path.join(folder, "inference"), "cpu",
                          threads)
    load_s = time.perf_counter() - t0
    h, w = spec["height"], spec["width"]
    img = np.random.RandomState(0).rand(1, 3, h, w).astype(np.float32)
    plan = TilePlan(tile=spec.get("tile") or 0, overlap=spec.get("tile_overlap") or 0,
                    multiple=getattr(run, "size_multiple", 1))
    for _ in range(spec["warmup"]):
        restore(run, img, plan)
    times = []
    for _ in range(spec["repeat"]):
        t = time.perf_counter()
        out = restore(run, img, plan)
        times.append(time.perf_counter() - t)
    assert out.shape == img.shape and np.isfinite(out).all(), "bad output"
    med = statistics.median(times)
    result = {"median_s": round(med, 4), "min_s": round(min(times), 4), "load_s": round(load_s, 3),
              "mpix_per_s": round(h * w / 1e6 / med, 4), "device": getattr(run, "description", backend)}
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def table(records):
    """Plain-text table of records."""
    head = ["model", "backend", "size", "tile", "threads", "median_s", "min_s", "load_s", "peak_rss_mb", "note"]
    rows = [head]
    for r in records:
        rows.append([r["model"], r["backend"], f"{r['height']}x{r['width']}", str(r.get("tile") or "-"),
                     str(r["threads"]), str(r.get("median_s", "-")), str(r.get("min_s", "-")),
                     str(r.get("load_s", "-")), str(r.get("peak_rss_mb", "-")), r.get("error", "")[:60]])
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(wd) for c, wd in zip(row, widths)).rstrip() for row in rows)
