"""Restore images with a trained checkpoint (dygraph), any size, tiled when large; scores with ground truth.

    python predict.py photos/ --weights model_best.pdparams --save-dir results/predict
    python predict.py big.png --weights W --tile 512 --tile-overlap 32 --compare
    python predict.py --model_ckpt W --data_path SIDD_patches/val_mini/ --save_path results/

INPUT is a file, a folder, a glob, or a folder in a paired layout (input/ + groundtruth/), which is scored
against its ground truth; --gt names ground truth (a file, or a folder matched by file name) otherwise.
8/16-bit, grayscale and RGBA images are written back in their own form.
"""
import argparse

from utils.cli import add_device_argument, run_main


def main(argv=None):
    from utils.checkpoint import build_from_weights
    from utils.deploy.restoration import add_tile_arguments, collect_items, restore_items, summary_lines, tile_plan
    from utils.deploy.runners import DygraphRunner
    from utils.device import set_device
    from utils.errors import UserError

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", help="image file, folder, glob or paired folder")
    p.add_argument("--data_path", "--data-path", "--input", dest="input_opt", help="same as INPUT")
    p.add_argument("--weights", "--model_ckpt", "--model-ckpt", "--checkpoint", dest="weights", required=True,
                   help="weights file (.pdparams) or training output folder")
    p.add_argument("-c", "--config", help="training config (when no config.yml is beside the weights)")
    p.add_argument("--gt", "--clean-dir", "--clean_dir", dest="gt", help="ground truth file or folder")
    p.add_argument("--save-dir", "--save_path", "--save-path", "--output", dest="save_dir",
                   default="results/predict", help="where restored images go (default: %(default)s)")
    p.add_argument("--save_images", "--save-images", action="store_true",
                   help="accepted for compatibility: restored images are always written")
    p.add_argument("--compare", action="store_true", help="also write input | output (| ground truth) panels")
    p.add_argument("--suffix", default="", help="added to output file names")
    p.add_argument("--batch-size", "--batch_size", type=int, default=1, help="images per forward pass")
    add_tile_arguments(p)
    add_device_argument(p)
    args = p.parse_args(argv)
    source = args.input or args.input_opt
    if not source:
        raise UserError("no input: pass an image file, folder or glob")
    items = collect_items(source, args.gt)
    device = set_device(args.device)
    runner = DygraphRunner(build_from_weights(args.weights, args.config)[0], device)
    print(f"{runner.description}: {len(items)} image(s) from {source}")
    records = restore_items(runner, items, args.save_dir, args.batch_size, tile_plan(args, runner.size_multiple),
                            args.compare, args.suffix)
    for line in summary_lines(records):
        print(line)
    print(f"restored {len(records)} image(s) into {args.save_dir}")
    return records


if __name__ == "__main__":
    run_main(main)
