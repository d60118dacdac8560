"""Forward alignment: record a model's outputs on fixed inputs (reprod_log), compare two records.

    python tools/alignment.py record --backend dygraph --weights W --out align/dygraph.npy
    python tools/alignment.py record --backend paddle --model-dir output/inference --out align/static.npy
    python tools/alignment.py record --backend onnx --model-dir output/inference --out align/onnx.npy
    python tools/alignment.py record --backend openvino --model-dir output/inference --out align/openvino.npy
    python tools/alignment.py compare align/dygraph.npy align/static.npy --threshold 1e-5
    python tools/alignment.py record --backend paddle --model-dir output/inference --device npu --out align/npu.npy

compare exits with status 1 when a difference is above the threshold.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    from utils.checkpoint import build_from_weights
    from utils.cli import ArgumentParser, add_device_argument, positive_int
    from utils.deploy import alignment
    from utils.deploy.runners import BACKENDS, DygraphRunner, infer_device, make_runner
    from utils.device import set_device
    from utils.fileio import check_not_inputs, output_file

    p = ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("record", help="record outputs on the fixed inputs")
    r.add_argument("--backend", choices=("dygraph",) + BACKENDS, default="dygraph")
    r.add_argument("--weights", help="weights file (dygraph)")
    r.add_argument("-c", "--config", help="training config (dygraph, when no config.yml is beside the weights)")
    r.add_argument("--model-dir", help="exported model folder (every backend but dygraph)")
    r.add_argument("--sizes", default="64x64,61x97,33x31", help="HxW list (default: %(default)s)")
    r.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: all)")
    add_device_argument(r, default="cpu")
    r.add_argument("--out", required=True, help="record file (.npy)")
    c = sub.add_parser("compare", help="compare two records")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--threshold", type=float, default=1e-5, help="(default: %(default)s)")
    c.add_argument("--method", choices=("max", "mean"), default="max")
    c.add_argument("--report", help="also write ReprodDiffHelper's report to this file")
    args = p.parse_args(argv)
    if args.command == "compare":
        passed, diffs = alignment.compare_files(args.a, args.b, args.threshold, args.method, args.report)
        for k, d in sorted(diffs.items()):
            print(f"{k}: {args.method} abs diff {d:.3e}")
        print(f"{'passed' if passed else 'FAILED'}: {args.method} abs diff {max(diffs.values()):.3e} "
              f"(threshold {args.threshold:g})")
        if not passed:
            raise SystemExit(1)
        return diffs
    sizes = alignment.parse_sizes(args.sizes)
    inputs = [args.weights, args.config] + ([os.path.join(args.model_dir, f) for f in os.listdir(args.model_dir)]
                                            if args.model_dir and os.path.isdir(args.model_dir) else [])
    out = args.out if args.out.endswith(".npy") else f"{args.out}.npy"
    check_not_inputs([out], inputs, "give --out another name")
    output_file(out, "--out")
    if args.backend == "dygraph":
        if not args.weights:
            p.error("record --backend dygraph needs --weights")
        device = set_device(args.device)
        run = DygraphRunner(build_from_weights(args.weights, args.config)[0], device)
    else:
        if not args.model_dir:
            p.error(f"record --backend {args.backend} needs --model-dir")
        run = make_runner(args.backend, args.model_dir, infer_device(args.device), args.threads)
    path = alignment.save_record(args.out, alignment.record(run, sizes))
    print(f"recorded {len(sizes)} output(s) with {getattr(run, 'description', args.backend)} into {path}")
    return path


if __name__ == "__main__":
    sys.path.insert(0, ROOT)  # run as a script: the repository's packages
    from utils.cli import run_main

    run_main(main)
