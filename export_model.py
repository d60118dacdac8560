"""Export a trained model to a Paddle static graph (dynamic height and width) for infer.py, optionally ONNX.

    python export_model.py -c training_1card.yml --weights model_best.pdparams --save-inference-dir output/inference
    python export_model.py --weights model_best.pdparams --save-inference-dir output/inference --onnx

The config is optional when the weights have the training config.yml beside them or are converted official
weights.  The default format is the legacy program (inference.pdmodel), which OpenVINO reads as it is (the
fastest CPU engine; checked here against the network when openvino is installed); --format json writes the PIR
program instead.
"""
import argparse
import sys

from utils.cli import ArgumentParser, folder, non_negative_int, positive_int, run_main


def main(argv=None):
    from utils.checkpoint import build_from_weights, resolve_weights
    from utils.deploy.export import FORMATS, export_model

    p = ArgumentParser(description=__doc__)
    p.add_argument("-c", "--config", help="training config whose 'network' section built the weights")
    p.add_argument("--weights", "--model-path", "--model_path", "--pretrained", dest="weights",
                   help="weights file (.pdparams) or a training output folder")
    p.add_argument("--model-dir", "--model_dir", dest="old_weights", help=argparse.SUPPRESS)  # earlier spelling
    p.add_argument("--save-inference-dir", "--save_inference_dir", type=folder, default="output/inference",
                   help="output folder (default: %(default)s)")
    p.add_argument("--format", choices=FORMATS, default="pdmodel",
                   help="pdmodel: legacy program, fastest on CPU (default); json: PIR program")
    p.add_argument("--onnx", action="store_true", help="also write inference.onnx (paddle2onnx, checked against "
                                                       "the network)")
    p.add_argument("--opset", type=positive_int, default=13, help="ONNX opset (default: %(default)s)")
    p.add_argument("--tile", type=non_negative_int, default=512,
                   help="tile size infer.py uses for large images (default: %(default)s)")
    p.add_argument("--tile-overlap", "--tile_overlap", type=non_negative_int, default=32,
                   help="tile overlap (default: %(default)s)")
    args = p.parse_args(argv)
    if args.old_weights:
        print("note: --model-dir names exported models elsewhere; pass the weights with --weights", file=sys.stderr)
    if not (args.weights or args.old_weights):
        p.error("the following arguments are required: --weights")
    weights = resolve_weights(args.weights or args.old_weights)
    net, cfg = build_from_weights(weights, args.config)
    meta = export_model(net, cfg, args.save_inference_dir, args.format, args.onnx, args.opset, args.tile,
                        args.tile_overlap, inputs=[weights, args.config])
    files = [meta["program"], meta["params"]] + ([meta["onnx"]] if meta["onnx"] else [])
    print(f"exported {meta['model_name']} ({args.format}) from {weights} to {args.save_inference_dir}: "
          f"{', '.join(files)}, inference.yml")
    if meta["onnx_max_abs_diff"] is not None:
        print(f"ONNX model checked against the network: max abs difference {meta['onnx_max_abs_diff']:.2e}")
    ov = meta["openvino"] or {}
    if ov:
        print(f"OpenVINO {ov['version']} checked against the network: max abs difference {ov['max_abs_diff']:.2e}"
              if "error" not in ov else f"note: {ov['error']}; infer.py will run Paddle Inference with oneDNN")
    return meta


if __name__ == "__main__":
    run_main(main)
