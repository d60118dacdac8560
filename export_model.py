"""Export a trained model to a Paddle static graph (dynamic height and width) for infer.py, optionally ONNX.

    python export_model.py -c training_1card.yml --weights model_best.pdparams --save-inference-dir output/inference
    python export_model.py --model-dir model_best.pdparams --save-inference-dir output/inference --onnx

The config is optional when the weights have the training config.yml beside them or are converted official
weights.  The default format is the legacy program (inference.pdmodel), the fastest correct CPU path;
--format json writes the PIR program instead.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from utils.export import preselect_ir  # noqa: E402  (imports no Paddle)

if __name__ == "__main__":
    preselect_ir(sys.argv[1:])  # the export format is fixed when Paddle is imported

from utils.cli import quiet_paddle, run_main  # noqa: E402

quiet_paddle()
from utils.export import FORMATS, export_model, ir_matches, rerun_with_ir, resolve_weights  # noqa: E402
from utils.inference import build_from_weights  # noqa: E402


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", help="training config whose 'network' section built the weights")
    p.add_argument("--weights", "--model-dir", "--model_dir", "--model-path", "--pretrained", dest="weights",
                   required=True, help="weights file (.pdparams) or a training output folder")
    p.add_argument("--save-inference-dir", "--save_inference_dir", default="output/inference",
                   help="output folder (default: %(default)s)")
    p.add_argument("--format", choices=FORMATS, default="pdmodel",
                   help="pdmodel: legacy program, fastest on CPU (default); json: PIR program")
    p.add_argument("--onnx", action="store_true", help="also write inference.onnx (paddle2onnx, checked against "
                                                       "the network)")
    p.add_argument("--opset", type=int, default=13, help="ONNX opset (default: %(default)s)")
    p.add_argument("--tile", type=int, default=512, help="tile size infer.py uses for large images (default: "
                                                         "%(default)s)")
    p.add_argument("--tile-overlap", "--tile_overlap", type=int, default=32, help="tile overlap (default: "
                                                                                  "%(default)s)")
    args = p.parse_args(argv)
    weights = resolve_weights(args.weights)
    net, cfg = build_from_weights(weights, args.config)  # bad weights fail here, before any re-run
    if not ir_matches(args.format):  # Paddle was imported before the format was known: export in a fresh process
        code = rerun_with_ir(os.path.abspath(__file__), argv, args.format)
        if code:
            raise SystemExit(code)
        return None
    meta = export_model(net, cfg, args.save_inference_dir, args.format, args.onnx, args.opset, args.tile,
                        args.tile_overlap)
    files = [meta["program"], meta["params"]] + ([meta["onnx"]] if meta["onnx"] else [])
    print(f"exported {meta['model_name']} ({args.format}) from {weights} to {args.save_inference_dir}: "
          f"{', '.join(files)}, inference.yml")
    if meta["onnx_max_abs_diff"] is not None:
        print(f"ONNX model checked against the network: max abs difference {meta['onnx_max_abs_diff']:.2e}")
    return meta


if __name__ == "__main__":
    run_main(main)
