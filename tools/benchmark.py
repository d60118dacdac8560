"""Benchmark inference: latency, predictor load time and peak memory per model and backend (random weights).

    python tools/benchmark.py --models MIRNet_v2 --backends dygraph inference onnx --size 256 256 --repeat 5 \
        --threads 2 --json output/benchmark.json
    python tools/benchmark.py --tiled-memory --backends inference   # 4000 x 3000 image, tiles 512 / overlap 32

Each measurement runs in its own process; peak_rss_mb is that process's peak resident memory.  Network
arguments can be changed with -o MODEL.key=value (e.g. -o MIRNet_v2.n_feat=16 for a quick run).
"""
import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from utils.cli import UserError, quiet_paddle, run_main  # noqa: E402

quiet_paddle()
from utils import benchmark as bm  # noqa: E402
from utils.config import parse_value  # noqa: E402
from utils.fileio import atomic_write_text  # noqa: E402


def parse_overrides(items, models):
    out = {m: {} for m in models}
    for item in items:
        key, eq, value = item.partition("=")
        model, dot, arg = key.partition(".")
        if not (eq and dot and model in out):
            raise UserError(f"override {item!r} must look like MODEL.key=value with MODEL one of {', '.join(models)}")
        out[model][arg] = parse_value(value)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", help="registered network names (default: all)")
    p.add_argument("--backends", nargs="+", default=list(bm.BACKENDS), help="dygraph inference onnx")
    p.add_argument("--size", nargs=2, type=int, default=[256, 256], metavar=("H", "W"))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tile", type=int, default=0, help="tile size (0 = whole image)")
    p.add_argument("--tile-overlap", type=int, default=32)
    p.add_argument("--tiled-memory", action="store_true", help="4000 x 3000 image, tile 512, overlap 32, 1 run")
    p.add_argument("-o", "--override", action="append", default=[], help="MODEL.key=value network argument")
    p.add_argument("--timeout", type=float, default=None, help="seconds per measurement")
    p.add_argument("--json", help="write the records to this file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return bm.worker(json.loads(args.worker))
    from networks import NETWORKS

    models = args.models or sorted(NETWORKS)
    unknown = [m for m in models if m not in NETWORKS]
    if unknown:
        raise UserError(f"unknown model(s) {unknown}; registered: {', '.join(sorted(NETWORKS))}")
    if args.tiled_memory:
        args.size, args.tile, args.tile_overlap, args.repeat, args.warmup = [3000, 4000], 512, 32, 1, 0
    overrides, machine, records = parse_overrides(args.override, models), bm.machine_info(), []
    for model in models:
        with tempfile.TemporaryDirectory(prefix="bench-") as folder:
            errors = bm.prepare(model, overrides[model], folder, args.backends, os.path.join(ROOT, "export_model.py"))
            for backend in args.backends:
                spec = {"model": model, "backend": backend, "precision": "fp32", "height": args.size[0],
                        "width": args.size[1], "threads": args.threads, "repeat": args.repeat,
                        "warmup": args.warmup, "tile": args.tile, "tile_overlap": args.tile_overlap,
                        "folder": folder}
                if backend not in bm.BACKENDS:
                    rec = {**{k: spec.get(k) for k in bm.RECORD_KEYS}, "error": f"backend {backend!r} is not "
                           f"available here (available: {', '.join(bm.BACKENDS)})"}
                elif errors.get(backend):
                    rec = {**{k: spec.get(k) for k in bm.RECORD_KEYS}, "error": errors[backend]}
                else:
                    rec = bm.measure(spec, os.path.abspath(__file__), args.timeout)
                rec["machine"] = machine
                records.append(rec)
                print(f"{model} {backend}: " + ", ".join(f"{k} {rec.get(k)}" for k in (
                    "median_s", "min_s", "load_s", "peak_rss_mb") if rec.get(k) is not None) + (
                    f" error: {rec['error']}" if rec.get("error") else ""), flush=True)
    print(f"machine: {machine}\n" + bm.table(records))
    if args.json:
        atomic_write_text(args.json, json.dumps(records, indent=2) + "\n")
    return records


if __name__ == "__main__":
    run_main(main)
