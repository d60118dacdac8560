"""Benchmark inference and training: latency, Mpixel/s, load time, peak memory per model and backend.

    python tools/benchmark.py --models MIRNet_v2 MIMOUNet --backends inference openvino onednn onnx int8 bf16 \
        --size 256 256 --repeat 5 --threads 2 --json output/benchmark.json --markdown output/benchmark.md
    python tools/benchmark.py --tiled-memory --backends inference   # 4000 x 3000 image, tiles 512 / overlap 32
    python tools/benchmark.py --models MIRNet_v2 MIMOUNet --backends train --train-batch 2 --size 128 128  # s/step
    python tools/benchmark.py --from-json a.json b.json --markdown -   # one table from saved records

Random weights; each measurement runs in its own process (peak_rss_mb is that process's peak resident
memory).  Backends that cannot run here (e.g. bf16 without AMX / AVX512-BF16) give a record with an error.
Network arguments: -o MODEL.key=value (e.g. -o MIRNet_v2.n_feat=16 for a quick run).
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    from utils.cli import ArgumentParser, non_negative_int, positive_float, positive_int
    from utils.config import model_overrides
    from utils.deploy import benchmark as bm
    from utils.errors import UserError
    from utils.fileio import atomic_write_text, check_not_inputs, output_file

    p = ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", help="registered network names (default: all)")
    p.add_argument("--backends", nargs="+", default=["dygraph", "inference", "onnx"], help=" ".join(bm.BACKENDS))
    p.add_argument("--size", nargs=2, type=positive_int, metavar=("H", "W"), help="default 256 256 (train: recipe's)")
    p.add_argument("--repeat", type=positive_int, default=5)
    p.add_argument("--warmup", type=non_negative_int, default=1)
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--peak-gflops", type=positive_float, help="fp32 peak of the threads (default: cores x clock x FMA)")
    p.add_argument("--tile", type=non_negative_int, default=0, help="tile size (0 = whole image)")
    p.add_argument("--tile-overlap", type=non_negative_int, default=32)
    p.add_argument("--tiled-memory", action="store_true", help="4000 x 3000 image, tile 512, overlap 32, 1 run")
    p.add_argument("--train-batch", type=positive_int, help="train backend: batch (default: the stage's per card)")
    p.add_argument("--num-workers", type=non_negative_int, help="train backend: data workers (default: the recipe's)")
    p.add_argument("--train-data", help="train backend: data folder (default: the model's lite data in data/lite)")
    p.add_argument("--cpu-static", default="auto", choices=["auto", "true", "false"], help="train: train.cpu_static")
    p.add_argument("--onednn-ops", default="auto", choices=["auto", "true", "false"],
                   help="train: train.onednn_ops")
    p.add_argument("-o", "--override", action="append", default=[], help="MODEL.key=value network argument")
    p.add_argument("--timeout", type=positive_float, default=None, help="seconds per measurement")
    p.add_argument("--json", help="write the records to this file")
    p.add_argument("--markdown", help="write a Markdown table of the records to this file (- = print)")
    p.add_argument("--from-json", nargs="+", help="read records from these files instead of measuring")
    args = p.parse_args(argv)
    outputs = [output_file(f, "--json / --markdown") for f in (args.json, args.markdown) if f and f != "-"]
    check_not_inputs(outputs, args.from_json or [], "write the records to another file")
    if args.from_json:
        records = bm.read_records(args.from_json)
    else:
        from networks import NETWORKS

        models = args.models or sorted(NETWORKS)
        unknown = [m for m in models if m not in NETWORKS]
        if unknown:
            raise UserError(f"unknown model(s) {unknown}; registered: {', '.join(sorted(NETWORKS))}")
        if args.tiled_memory:
            args.size, args.tile, args.tile_overlap, args.repeat, args.warmup = [3000, 4000], 512, 32, 1, 0
        records = bm.run_all(models, args.backends, bm.base_spec(args), model_overrides(args.override, models),
                             args.timeout, echo=lambda line: print(line, flush=True), peak=args.peak_gflops)
        print(f"machine: {bm.describe_machine(records[0]['machine'])}" if records else "no records")
    print(bm.table(records))
    if args.json:
        atomic_write_text(args.json, json.dumps(records, indent=2) + "\n")
    if args.markdown:
        text = bm.markdown(records)
        print(text, end="") if args.markdown == "-" else atomic_write_text(args.markdown, text)
    return records


if __name__ == "__main__":
    sys.path.insert(0, ROOT)  # run as a script: the repository's packages
    from utils.cli import run_main

    run_main(main)
