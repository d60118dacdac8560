"""Evaluate a checkpoint on the SIDD validation blocks (the official protocol) or on a paired folder.

    python test_denoising_sidd.py --weights model_best.pdparams --mat-dir Datasets/test/SIDD --save-mat
    python test_denoising_sidd.py --weights W --data-dir data/lite/sidd/val --batch-size 4

Every block is restored, clamped to [0, 1] and scored without rounding: PSNR, the scikit-image SSIM and the
MATLAB-style SSIM the SIDD benchmark uses (labelled; they differ by up to about 0.05).  Results go to
RESULT_DIR/metrics.json; --save-mat writes Idenoised.mat as the official scripts do, --save-images PNGs.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from utils.cli import UserError, add_device_argument, quiet_paddle, run_main  # noqa: E402

quiet_paddle()
from utils.device import set_device  # noqa: E402
from utils.evaluation import FolderPairs, MatBlocks, evaluate, summary_line  # noqa: E402
from utils.export import resolve_weights  # noqa: E402
from utils.inference import DygraphRunner, build_from_weights  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", "--model_ckpt", dest="weights", required=True, help="weights file (.pdparams)")
    p.add_argument("-c", "--config", help="training config (when no config.yml is beside the weights)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--mat-dir", "--mat_dir", "--input_dir", dest="mat_dir",
                     help="folder with ValidationNoisyBlocksSrgb.mat and ValidationGtBlocksSrgb.mat "
                          "(default: Datasets/test/SIDD)")
    src.add_argument("--data-dir", "--data_dir", dest="data_dir", help="paired folder: input/ + groundtruth/")
    p.add_argument("--result-dir", "--result_dir", default="results/sidd", help="(default: %(default)s)")
    p.add_argument("--save-mat", "--save_mat", action="store_true", help="write Idenoised.mat (float32)")
    p.add_argument("--save-images", "--save_images", action="store_true", help="write restored blocks as PNG")
    p.add_argument("--batch-size", "--batch_size", type=int, default=1, help="blocks per forward pass")
    p.add_argument("--limit", type=int, help="evaluate only the first N images (quick checks)")
    add_device_argument(p)
    args = p.parse_args(argv)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.data_dir:
        source = FolderPairs(args.data_dir, args.limit)
    else:
        source = MatBlocks(args.mat_dir or os.path.join("Datasets", "test", "SIDD"), args.limit)
    device = set_device(args.device)
    net, cfg = build_from_weights(resolve_weights(args.weights), args.config)
    runner = DygraphRunner(net, device)
    print(f"{runner.description}: {len(source)} block(s), batch size {args.batch_size}")
    summary = evaluate(runner, source, args.batch_size, args.result_dir, args.save_mat, args.save_images)
    print(summary_line(summary))
    print(f"results written to {args.result_dir}")
    return summary


if __name__ == "__main__":
    run_main(main)
