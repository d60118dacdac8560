"""Benchmark: latency, load time and peak memory per model and backend, each in its own process.

The parent prepares random-weight models (and their exports and INT8 model, untimed), then runs every
(model, backend) measurement in a fresh interpreter (``python -m utils.deploy.benchmark SPEC``) and reads that
child's peak resident memory from ``os.wait4``.  A worker restores a random image of the requested size
``warmup`` times untimed, then ``repeat`` times timed (tiled when a tile size is given).  Backends:

- ``dygraph``: the network in Paddle dygraph (what predict.py runs);
- ``inference``: the exported model under infer.py's default engine (``--backend auto``: the fastest installed);
- ``openvino``, ``paddle-openvino``, ``onednn``, ``onnx``: the exported model under one engine, forced (OpenVINO;
  Paddle Inference's OpenVINO engine; Paddle Inference with oneDNN; ONNX Runtime on the paddle2onnx model);
- ``int8``: the tools/quantize.py model (post-training quantisation) with oneDNN INT8 kernels;
- ``bf16``: the exported model in bfloat16 under the default engine (refused on CPUs without AVX512-BF16 / AMX);
- ``train``: the training engine's step on the model's recipe (its first progressive stage: loss, optimizer,
  batch and patch, or ``train_batch`` and the requested size) and its lite data: seconds per optimizer step,
  images/s and the share of each iteration spent waiting for data.

A backend that cannot run gives a record with an ``error`` string.  Records are dicts with the keys in
``RECORD_KEYS`` (plus ``tile``, ``tile_overlap``, ``repeat``, ``mpix_per_s``, ``device`` (the engine's
one-line description), ``error``, ``machine``; inference records add ``cpu_s``, ``gflop`` (twice the model
card's multiply-accumulates of one untiled image), ``gflop_per_s`` and ``pct_peak``, the share of
``machine["peak_gflops"]``, the CPU's fp32 peak for the threads used; training records add ``images_per_s``,
``reader_share``, ``batch_size``, ``num_workers``, ``loss``, ``train_step`` and ``cpu_math``).
"""
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

RECORD_KEYS = ("model", "backend", "engine", "precision", "height", "width", "threads", "median_s", "min_s",
               "load_s", "peak_rss_mb")
BACKENDS = ("dygraph", "inference", "openvino", "paddle-openvino", "onednn", "onnx", "int8", "bf16", "train")
PRECISION = {"int8": "int8", "bf16": "bf16"}
EXPORTED = ("inference", "openvino", "paddle-openvino", "onednn", "onnx", "int8", "bf16")
ENGINE_OF = {"inference": "auto", "onednn": "paddle", "int8": "paddle", "bf16": "auto"}  # else the backend's name
# fp32 FLOP per cycle and core: two fused multiply-add units of 8 (AVX2) or 16 (AVX-512) floats
FLOP_PER_CYCLE = {"avx512f": 64, "avx2": 32}
# per network: the recipe whose first progressive stage (loss, optimizer, batch, patch) the ``train`` backend
# runs, the lite data it trains on (python tools/make_lite_data.py --task all) and the make_lite_data task
TRAIN_RECIPES = {
    "MIRNet_v2": ("training_1card.yml", "data/lite/SIDD_patches/train_mini", "sidd"),
    "MIMOUNet": ("configs/mimo_unet_gopro.yml", "data/lite/GOPRO/train", "gopro"),
    "MIMOUNetPlus": ("configs/mimo_unet_plus_gopro.yml", "data/lite/GOPRO/train", "gopro"),
    "DAE_BN": ("configs/dmsp_dae_bsds300.yml", "data/lite/BSDS300", "bsds"),
}
NO_RECIPE = {"DAE": "DAE is the folded deployment form of DAE_BN (tools/fold_dae.py); train DAE_BN"}
RESULT_PREFIX = "BENCHMARK_RESULT "
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository


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
    from ..device import available_cores

    cores = available_cores()
    return {"cpu": model, "cores": cores, "flags": [f for f in interesting if f in flags],
            "python": platform.python_version(), "paddle": paddle_version, "ghz": cpu_ghz(model)}


def cpu_ghz(model_name=""):
    """The CPU's nominal clock in GHz: from its model name ('... @ 2.40GHz'), else cpufreq's maximum, else
    /proc/cpuinfo's current 'cpu MHz' (a virtual machine may report the host's timer clock there: pass
    --peak-gflops when the nominal clock is known)."""
    import re

    found = re.search(r"@\s*([\d.]+)\s*GHz", model_name or "")
    if found:
        return float(found.group(1))
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", encoding="utf-8") as f:
            return int(f.read().strip()) / 1e6
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            mhz = [float(ln.split(":", 1)[1]) for ln in f if ln.startswith("cpu MHz")]
        return round(max(mhz) / 1000.0, 3) if mhz else None
    except (OSError, ValueError):
        return None


def peak_gflops(machine, threads):
    """fp32 peak of ``threads`` cores of ``machine`` (machine_info) in GFLOP/s: cores x clock x FLOP per cycle."""
    per_cycle = next((v for flag, v in FLOP_PER_CYCLE.items() if flag in machine.get("flags", ())), 16)
    if not machine.get("ghz"):
        return None
    return round(min(int(threads), int(machine.get("cores") or threads)) * machine["ghz"] * per_cycle, 1)


def prepare(model, overrides, folder, backends):
    """Random weights (with config.yml) for ``model`` in ``folder`` and, when needed, its export and INT8 model.

    Returns ({backend: error or None}, the network): a failed export marks the backends that need it.
    """
    import paddle
    import yaml

    from networks import build_network

    from ..errors import UserError
    from .export import export_model

    cfg = {"name": model, **overrides}
    paddle.seed(0)
    net = build_network(cfg)
    net.eval()
    paddle.save(net.state_dict(), os.path.join(folder, "weights.pdparams"))
    with open(os.path.join(folder, "config.yml"), "w", encoding="utf-8") as f:
        yaml.safe_dump({"network": cfg}, f)
    errors = {b: None for b in backends}
    if set(EXPORTED) & set(backends):
        try:
            export_model(net, cfg, os.path.join(folder, "inference"), onnx="onnx" in backends)
        except (UserError, RuntimeError, ValueError) as exc:
            errors.update({b: f"export failed: {_first_line(exc)}" for b in EXPORTED if b in errors})
    if "int8" in backends and not errors["int8"]:
        errors["int8"] = _quantize(folder)
    return errors, net


def _first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _quantize(folder, images=2, size=64):
    """INT8 model of ``folder``/inference in ``folder``/inference_int8, calibrated on built-in photo crops (enough
    for timing; tools/quantize.py on real data for deployment).  Returns an error string or None."""
    from ..errors import UserError
    from .quantize import quantize_int8
    from .restoration import default_image

    batches = [default_image(size, seed=k)[0][None] for k in range(images)]
    try:
        quantize_int8(os.path.join(folder, "inference"), batches, os.path.join(folder, "inference_int8"))
    except (UserError, RuntimeError, ValueError) as exc:
        return f"quantisation failed: {_first_line(exc)}"
    return None


def vm_hwm_mb(pid="self"):
    """Peak resident memory of process ``pid`` itself (VmHWM), in MiB; None where /proc does not tell."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            return next((round(int(ln.split()[1]) / 1024.0, 1) for ln in f if ln.startswith("VmHWM:")), None)
    except (OSError, ValueError):
        return None


def measure(spec, timeout=None):
    """Run one measurement in a child process (``python -m utils.deploy.benchmark SPEC``); returns its record
    with peak_rss_mb.  Inference records take the child's own peak (VmHWM, read while it runs): the rusage
    maximum of a child also counts the parent's memory, which a child started by fork / vfork and exec
    inherits (Linux).  Training records keep the rusage maximum, which covers the data workers."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-m", "utils.deploy.benchmark", json.dumps(spec)], stdout=out,
                                stderr=subprocess.STDOUT, env=env, text=True)
        start, timed_out, own_peak = time.time(), False, None
        while True:
            own_peak = vm_hwm_mb(proc.pid) or own_peak
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if timeout and time.time() - start > timeout:
                timed_out = True
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
    elif timed_out:
        record["error"] = f"stopped at the {timeout:g} s time limit (peak_rss_mb covers the part that ran)"
    else:
        tail = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or [f"exit status {proc.returncode}"]
        record["error"] = f"worker failed (exit {proc.returncode}): {tail[0][:300]}"
    own_peak = max(record.pop("own_peak_rss_mb", None) or 0, own_peak or 0)
    record["peak_rss_mb"] = own_peak if own_peak and spec["backend"] != "train" else \
        round(usage.ru_maxrss / 1024.0, 1)  # Linux reports KiB
    return record


def worker(spec):
    """Child side of ``measure``: time one backend and print the result line (an ``error`` result when the
    backend cannot run here)."""
    from ..errors import UserError

    try:
        result = train_worker(spec) if spec["backend"] == "train" else infer_worker(spec)
    except (UserError, ImportError, RuntimeError, ValueError, OSError) as exc:
        result = {"error": (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]}
    result["own_peak_rss_mb"] = vm_hwm_mb()
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def infer_worker(spec):
    import numpy as np

    from ..checkpoint import build_from_weights
    from .restoration import restore
    from .runners import DygraphRunner, make_runner
    from .tiling import TilePlan

    t0 = time.perf_counter()
    folder, backend, threads = spec["folder"], spec["backend"], spec["threads"]
    if backend == "dygraph":
        import paddle

        paddle.set_device("cpu")
        run = DygraphRunner(build_from_weights(os.path.join(folder, "weights.pdparams"))[0])
    else:
        sub = "inference_int8" if backend == "int8" else "inference"
        run = make_runner(ENGINE_OF.get(backend, backend), os.path.join(folder, sub), "cpu", threads, True,
                          PRECISION.get(backend, "fp32"))
    load_s = time.perf_counter() - t0
    h, w = spec["height"], spec["width"]
    img = np.random.RandomState(0).rand(1, 3, h, w).astype(np.float32)
    plan = TilePlan(tile=spec.get("tile") or 0, overlap=spec.get("tile_overlap") or 0,
                    multiple=getattr(run, "size_multiple", 1))
    for _ in range(spec["warmup"]):
        restore(run, img, plan)
    times, cpu = [], []
    for _ in range(spec["repeat"]):
        t, c = time.perf_counter(), time.process_time()
        out = restore(run, img, plan)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    if out.shape != img.shape or not np.isfinite(out).all():
        raise ValueError(f"bad output: shape {out.shape}, finite {bool(np.isfinite(out).all())}")
    med = statistics.median(times)
    return {"median_s": round(med, 4), "min_s": round(min(times), 4), "load_s": round(load_s, 3),
            "cpu_s": round(statistics.median(cpu), 4), "mpix_per_s": round(h * w / 1e6 / med, 4),
            "device": getattr(run, "description", backend), "engine": getattr(run, "engine", backend)}


def _setting(value):
    """A command line's auto / true / false as the config's value."""
    return {"true": True, "false": False}.get(value, "auto")


def train_config(spec, root):
    """Run config for the ``train`` backend: the model's recipe, first stage only, on its lite data; returns
    (config, batch, (height, width)).  ``spec`` height / width (None: the stage's patch) give the patch: a square
    one of the larger side, cropped to height x width when they differ."""
    from ..config import load_config

    if spec["model"] not in TRAIN_RECIPES:
        raise ValueError(f"no training recipe for {spec['model']}: "
                         + NO_RECIPE.get(spec["model"], f"the train backend knows {', '.join(TRAIN_RECIPES)}"))
    recipe, lite, task = TRAIN_RECIPES[spec["model"]]
    data = spec.get("train_data") or os.path.join(root, lite)
    if not os.path.isdir(data):
        raise ValueError(f"training data not found at {data} (python tools/make_lite_data.py --task {task})")
    cfg = load_config(os.path.join(root, recipe))
    stage = dict(cfg["train"]["stages"][0])
    batch = int(spec.get("train_batch") or stage.get("micro_batch") or stage["batch_size"])
    size = (spec.get("height"), spec.get("width"))
    size = size if None not in size else (stage["patch_size"], stage["patch_size"])
    iters = spec["warmup"] + spec["repeat"]
    cfg["network"].update(spec.get("overrides") or {})
    cfg["data"]["train"]["root"], cfg["data"]["val"] = data, None
    cfg["data"]["train"].pop("cache", None)
    if spec.get("num_workers") is not None:
        cfg["data"]["num_workers"] = int(spec["num_workers"])
    cfg["train"].update(stages=[{"iters": iters, "batch_size": batch, "patch_size": max(size)}],
                        max_iters=None, max_minutes=None,
                        cpu_static=_setting(spec.get("train_cpu_static")),
                        onednn_ops=_setting(spec.get("train_onednn_ops")))
    cfg["train"]["scheduler"] = {"name": "ConstantLR"}
    cfg["output"] = {"model_dir": os.path.join(spec["folder"], "train"), "log_dir": os.path.join(spec["folder"], "vdl"),
                     "checkpoint_freq": 10 ** 9, "keep_last": 1}
    cfg["log"] = {"print_freq": 1, "progress_bar": False, "visualdl": False, "figures": False}
    return cfg, batch, size


class _Crop:
    """A training set whose samples are cropped to ``height`` x ``width`` (the top-left corner of its patch)."""

    def __init__(self, dataset, height, width):
        self.dataset, self.height, self.width = dataset, height, width

    def set_patch_size(self, size):
        self.dataset.set_patch_size(size)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return tuple(a[:, :self.height, :self.width].copy() for a in self.dataset[i])


def train_worker(spec):
    """Training speed: seconds per optimizer step (forward, loss, backward, update; ``median_s``) over
    ``repeat`` steps after ``warmup`` ones, and the share of each iteration spent waiting for data."""
    import re

    from .. import engine

    cfg, batch, (h, w) = train_config(spec, ROOT)
    t0 = time.perf_counter()
    trainer = engine.Trainer(cfg, device="cpu")
    # the engine takes every core; the record says spec["threads"] (OMP_NUM_THREADS=1 cannot ask for one)
    import paddle

    paddle.base.core.set_num_threads(int(spec["threads"]))
    if (h, w) != (max(h, w),) * 2:
        trainer.train_set = _Crop(trainer.train_set, h, w)
    load_s = time.perf_counter() - t0
    steps, step = [], trainer.train_step

    def timed_step(*args):
        t, c = time.perf_counter(), time.process_time()
        loss = step(*args)
        steps.append((time.perf_counter() - t, time.process_time() - c))
        return loss

    trainer.train_step = timed_step
    trainer.fit()
    with open(os.path.join(cfg["output"]["model_dir"], "train.log"), encoding="utf-8") as f:
        costs = [(float(a), float(b)) for a, b in re.findall(r"avg_reader_cost: ([\d.]+) sec, avg_batch_cost: ([\d.]+)",
                                                              f.read())][spec["warmup"]:]
    steps = steps[spec["warmup"]:]
    if not steps or not costs:
        raise ValueError("the training run logged no iterations")
    times = [t for t, _ in steps]
    med = statistics.median(times)
    static = getattr(trainer, "static_step", None)
    return {"median_s": round(med, 4), "min_s": round(min(times), 4), "load_s": round(load_s, 3),
            "cpu_s": round(statistics.median(c for _, c in steps), 4), "images_per_s": round(batch / med, 3),
            "reader_share": round(sum(r for r, _ in costs) / sum(b for _, b in costs), 4),
            "batch_size": batch, "patch_size": max(h, w), "num_workers": cfg["data"]["num_workers"],
            "height": h, "width": w, "loss": cfg["train"]["loss"]["name"],
            "train_step": ("static program, oneDNN" if static is not None and static.active else
                           f"dygraph, {trainer.onednn_layers} layers on oneDNN"
                           + (", merged Adam" if getattr(trainer.optimizer, "_use_multi_tensor", False) else "")
                           if getattr(trainer, "onednn_layers", 0)
                           else "dygraph"),
            "cpu_math": {k: os.environ[k] for k in ("MKL_DEBUG_CPU_TYPE",) if k in os.environ},
            "device": "training engine, first progressive stage, cpu"}


def base_spec(args):
    """The spec every measurement of tools/benchmark.py starts from, out of its parsed command line: ``--size``
    (256 x 256 when not given; the ``train`` backend then takes the recipe's patch) and the other settings."""
    height, width = args.size or (256, 256)
    return {"height": height, "width": width, "threads": args.threads, "repeat": args.repeat, "warmup": args.warmup,
            "tile": args.tile, "tile_overlap": args.tile_overlap, "train_batch": args.train_batch,
            "num_workers": args.num_workers, "train_data": args.train_data, "train_size": args.size,
            "train_cpu_static": args.cpu_static, "train_onednn_ops": args.onednn_ops}


def add_flop_rate(record, gflop, peak):
    """``gflop`` (one untiled image), ``gflop_per_s`` and ``pct_peak`` (of ``peak`` GFLOP/s) of an inference record."""
    if record.get("error") or record["backend"] == "train" or record.get("tile") or not record.get("median_s"):
        return record
    rate = gflop / record["median_s"]
    record.update(gflop=round(gflop, 2), gflop_per_s=round(rate, 2),
                  pct_peak=round(100.0 * rate / peak, 1) if peak else None)
    return record


def run_all(models, backends, base, overrides, timeout=None, echo=print, peak=None):
    """Every (model, backend) record; ``base`` holds height, width, threads, repeat, warmup, tile, tile_overlap
    and the training options; ``overrides`` maps model -> network arguments; ``peak``: the CPU's fp32 GFLOP/s
    for the threads used (default: ``peak_gflops``' estimate)."""
    import tempfile

    from .model_card import macs_at

    machine, records = machine_info(), []
    machine["peak_gflops"] = peak or peak_gflops(machine, base["threads"])
    for model in models:
        with tempfile.TemporaryDirectory(prefix="bench-") as folder:
            errors, net = prepare(model, overrides.get(model, {}), folder, [b for b in backends if b in BACKENDS])
            # the FLOP rate is a figure of inference records only: no forward pass for a training-only run
            gflop = 2 * macs_at(net, base["height"], base["width"]) / 1e9 if set(backends) - {"train"} else None
            for backend in backends:
                spec = {**base, "model": model, "backend": backend, "precision": PRECISION.get(backend, "fp32"),
                        "folder": folder, "overrides": overrides.get(model, {})}
                if backend == "train" and base.get("train_size") is not None:
                    spec["height"], spec["width"] = base["train_size"]
                elif backend == "train":  # the recipe's patch
                    spec["height"] = spec["width"] = None
                if backend not in BACKENDS:
                    rec = {**{k: spec.get(k) for k in RECORD_KEYS},
                           "error": f"backend {backend!r} is not available here (available: {', '.join(BACKENDS)})"}
                elif errors.get(backend):
                    rec = {**{k: spec.get(k) for k in RECORD_KEYS}, "error": errors[backend]}
                else:
                    rec = add_flop_rate(measure(spec, timeout), gflop, machine["peak_gflops"])
                rec["machine"] = machine
                records.append(rec)
                echo(f"{model} {backend}: " + ", ".join(f"{k} {rec[k]}" for k in (
                    "engine", "median_s", "min_s", "load_s", "peak_rss_mb", "pct_peak", "images_per_s", "reader_share")
                    if rec.get(k) is not None) + (f" error: {rec['error']}" if rec.get("error") else ""))
    return records


def _note(r):
    if r.get("error"):
        return r["error"]
    if r["backend"] == "train":
        return (f"{r['median_s']} s per optimizer step, {r['images_per_s']} images/s, step: "
                f"{r.get('train_step', 'dygraph')}, {r.get('loss', 'L1Loss')}, "
                f"reader {100 * r['reader_share']:.1f} % of each iteration "
                f"(batch {r['batch_size']}, {r['num_workers']} workers)")
    return f"{r['mpix_per_s']} Mpixel/s" if r.get("mpix_per_s") else ""


def table(records):
    """Plain-text table of records."""
    head = ["model", "backend", "engine", "precision", "size", "tile", "threads", "median_s", "min_s", "load_s",
            "peak_rss_mb", "%peak", "note"]
    rows = [head]
    for r in records:
        rows.append([r["model"], r["backend"], r.get("engine") or "-", r.get("precision") or "-",
                     f"{r['height']}x{r['width']}", str(r.get("tile") or "-"), str(r["threads"]),
                     str(r.get("median_s") or "-"), str(r.get("min_s") or "-"), str(r.get("load_s") or "-"),
                     str(r.get("peak_rss_mb") or "-"), str(r.get("pct_peak") or "-"), _note(r)[:90]])
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(wd) for c, wd in zip(row, widths)).rstrip() for row in rows)


def read_records(paths):
    """Records of one or more JSON files written by ``--json``, in order."""
    from ..errors import UserError

    records = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read benchmark records from {path}: {exc}") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) and "model" in r for r in data):
            raise UserError(f"{path} is not a list of benchmark records (write one with --json)")
        records.extend(data)
    return records


def describe_machine(m):
    flags = ", ".join(m.get("flags") or []) or "none of the flags checked"
    peak = f", fp32 peak {m['peak_gflops']} GFLOP/s for the threads used" if m.get("peak_gflops") else ""
    return (f"{m.get('cpu', 'unknown CPU')}, {m.get('cores')} cores available (SIMD: {flags}){peak}, Python "
            f"{m.get('python')}, Paddle {m.get('paddle')}")


def markdown(records):
    """Markdown section (machine line + table) generated from benchmark records."""
    if not records:
        return "No benchmark records.\n"
    lines = [f"Measured on: {describe_machine(records[0].get('machine') or {})}.", "",
             "| model | backend | engine | precision | input | threads | median s | min s | Mpixel/s | % fp32 peak "
             "| load s | peak RSS MB | note |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in records:
        size = f"{r['height']} x {r['width']}" + (f", tiles {r['tile']}" if r.get("tile") else "")
        note = r["error"] if r.get("error") else (_note(r) if r["backend"] == "train" else r.get("device", ""))
        cells = [r["model"], r["backend"], r.get("engine"), r.get("precision") or "", size, r["threads"],
                 r.get("median_s"), r.get("min_s"), r.get("mpix_per_s"), r.get("pct_peak"), r.get("load_s"),
                 r.get("peak_rss_mb"), note.replace("|", "/")]
        lines.append("| " + " | ".join("" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # the measuring child of ``measure``
    from ..cli import quiet_paddle
    from ..device import configure_cpu_math

    configure_cpu_math()  # before Paddle loads, as run_main does for the scripts
    quiet_paddle()
    worker(json.loads(sys.argv[1]))
