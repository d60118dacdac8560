"""Evaluate a deblurring network on the GoPro test set (official protocol: whole 1280 x 720 images, batch 1,
PSNR of the full-scale output clamped to [0, 1] on float RGB, data range 1), with SSIM as well.

    python test_deblurring_gopro.py --weights pretrained_models/MIMOUNet_GoPro.pdparams --data data/GOPRO/test
    python test_deblurring_gopro.py --weights pretrained_models/MIMOUNetPlus_GoPro.pdparams --self-ensemble  # ++

The network is rebuilt from the config.yml beside the weights (training output), from -c, or, for converted
official weights, from their keys.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from utils.cli import UserError, add_device_argument, run_main  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="network weights (.pdparams)")
    p.add_argument("-c", "--config", default=None, help="training config of the weights (default: beside them)")
    p.add_argument("--data", default="data/GOPRO/test", help="folder with blur/ and sharp/ (default: %(default)s)")
    p.add_argument("--self-ensemble", nargs="?", const="rot4", default="none", choices=["none", "rot4", "x8"],
                   help="test-time self-ensemble; alone: rot4, the 4 rotations of MIMO-UNet++")
    p.add_argument("--save-dir", default=None, help="write the restored images and results.csv here")
    p.add_argument("--timing", action="store_true", help="report the mean network time per image (after a warm-up)")
    p.add_argument("--max-images", type=int, default=None, help="evaluate only the first N images")
    add_device_argument(p)
    args = p.parse_args(argv)
    if not os.path.isfile(args.weights):
        raise UserError(f"weights file not found: {args.weights}")
    if args.max_images is not None and args.max_images < 1:
        raise UserError("--max-images must be at least 1")

    from dataloaders.gopro import GoProTestDataset
    from networks import build_network
    from utils.checkpoint import load_weights, network_config_for
    from utils.device import set_device
    from utils.fileio import atomic_write_text
    from utils.paired_eval import evaluate_pairs, results_csv

    dataset = GoProTestDataset(args.data)
    device = set_device(args.device)
    cfg = network_config_for(args.weights, args.config)
    model = load_weights(build_network(cfg), args.weights)
    res = evaluate_pairs(model, dataset, args.self_ensemble, args.save_dir, args.timing, device, args.max_images)
    n = len(res["rows"])
    tail = f" | {res['seconds']:.3f} s/image on {device}" if args.timing else ""
    ens = "" if args.self_ensemble == "none" else f" + self-ensemble {args.self_ensemble}"
    print(f"{cfg['name']}{ens} on {args.data}: {n} images | PSNR {res['psnr']:.2f} dB | SSIM {res['ssim']:.4f} "
          f"| blurred input PSNR {res['input_psnr']:.2f} dB{tail}")
    if args.save_dir:
        atomic_write_text(os.path.join(args.save_dir, "results.csv"), results_csv(res))
        print(f"restored images and results.csv in {args.save_dir}")


if __name__ == "__main__":
    run_main(main)
