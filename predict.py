"""Restore images with a trained checkpoint (dygraph), any size, tiled when large; scores with ground truth.

    python predict.py photos/ --weights model_best.pdparams --save-dir results/predict
    python predict.py big.png --weights W --tile 512 --tile-overlap 32 --compare
    python predict.py --model_ckpt W --data_path SIDD_patches/val_mini/ --save_path results/

INPUT is a file, a folder, a glob, or a folder in a paired layout (input/ + groundtruth/), which is scored
against its ground truth; --gt names ground truth (a file, or a folder matched by file name) otherwise.
8/16-bit, grayscale and RGBA images are written back in their own form.
"""
from utils.cli import ArgumentParser, add_device_argument, add_task_argument, folder, positive_int, run_main


def main(argv=None):
    from utils.checkpoint import build_from_weights
    from utils.deploy.restoration import (
        add_tile_arguments,
        collect_items,
        raise_for_unreadable,
        restore_items,
        restored_records,
        summary_lines,
        tile_plan,
        unreadable,
    )
    from utils.deploy.runners import DygraphRunner, check_task
    from utils.device import set_device
    from utils.errors import UserError

    p = ArgumentParser(description=__doc__)
    p.add_argument("input", nargs="?", help="image file, folder, glob or paired folder")
    p.add_argument("--data_path", "--data-path", "--input", dest="input_opt", help="same as INPUT")
    p.add_argument("--weights", "--model_ckpt", "--model-ckpt", "--checkpoint", dest="weights", required=True,
                   help="weights file (.pdparams) or training output folder")
    p.add_argument("-c", "--config", help="training config (when no config.yml is beside the weights)")
    p.add_argument("--gt", "--clean-dir", "--clean_dir", dest="gt", help="ground truth file or folder")
    p.add_argument("--save-dir", "--save_path", "--save-path", "--output", dest="save_dir", type=folder,
                   default="results/predict", help="where restored images go (default: %(default)s)")
    p.add_argument("--save_images", "--save-images", action="store_true",
                   help="accepted for compatibility: restored images are always written")
    p.add_argument("--compare", action="store_true", help="also write input | output (| ground truth) panels")
    p.add_argument("--suffix", default="", help="added to output file names")
    p.add_argument("--batch-size", "--batch_size", type=positive_int, default=1, help="images per forward pass")
    add_tile_arguments(p)
    add_task_argument(p)
    add_device_argument(p)
    args = p.parse_args(argv)
    source = args.input or args.input_opt
    if not source:
        raise UserError("no input: pass an image file, folder or glob")
    items = collect_items(source, args.gt)
    device = set_device(args.device)
    runner = DygraphRunner(build_from_weights(args.weights, args.config)[0], device)
    check_task(runner, ("denoising", "deblurring"), "predict.py", args.any_task)
    print(f"{runner.description}: {len(items)} image(s) from {source}")
    records = restore_items(runner, items, args.save_dir, args.batch_size, tile_plan(args, runner.size_multiple),
                            args.compare, args.suffix, skip_unreadable=True)
    for line in summary_lines(records):
        print(line)
    done = f"restored {len(restored_records(records))} image(s) into {args.save_dir}"
    print(done)
    raise_for_unreadable(unreadable(records), len(records), done)
    return records


if __name__ == "__main__":
    run_main(main)
