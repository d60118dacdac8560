"""Evaluate a deblurring network on the GoPro test set (official protocol: whole 1280 x 720 images, batch 1,
PSNR of the full-scale output clamped to [0, 1] on float RGB, data range 1), with SSIM as well.

    python test_deblurring_gopro.py --weights pretrained_models/MIMOUNet_GoPro.pdparams --data data/GOPRO/test
    python test_deblurring_gopro.py --weights pretrained_models/MIMOUNetPlus_GoPro.pdparams --self-ensemble  # ++
    python test_deblurring_gopro.py --model-dir output/inference --data data/GOPRO/test        # exported model

The network is rebuilt from the config.yml beside the weights (training output), from -c, or, for converted
official weights, from their keys.
"""
import os

from utils.cli import ArgumentParser, add_device_argument, folder, non_negative_int, run_main


def main(argv=None):
    from dataloaders.paired import GoProTestDataset
    from utils.deploy.ensemble import EnsembleRunner
    from utils.deploy.evaluation import evaluate_pairs, results_csv
    from utils.deploy.restoration import raise_for_unreadable
    from utils.deploy.runners import add_model_arguments, check_task, open_runner
    from utils.errors import UserError
    from utils.figures import Gallery
    from utils.fileio import atomic_write_text

    p = ArgumentParser(description=__doc__)
    add_model_arguments(p)  # --weights / -c, or --model-dir / --backend
    p.add_argument("--data", default="data/GOPRO/test", help="folder with blur/ and sharp/ (default: %(default)s)")
    p.add_argument("--self-ensemble", nargs="?", const="rot4", default="none", choices=["none", "rot4", "x8"],
                   help="test-time self-ensemble; alone: rot4, the 4 rotations of MIMO-UNet++")
    p.add_argument("--save-dir", type=folder, default=None, help="write the restored images and results.csv here")
    p.add_argument("--timing", action="store_true", help="report the mean network time per image (after a warm-up)")
    p.add_argument("--max-images", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--gallery", type=non_negative_int, nargs="?", const=3, default=0, metavar="N",
                   help="write SAVE_DIR/gallery.png (default folder results/gopro): crops of the N worst and N best "
                        "images by PSNR, input | output | ground truth (alone: 3)")
    add_device_argument(p)
    args = p.parse_args(argv)
    if args.max_images is not None and args.max_images < 1:
        raise UserError("--max-images must be at least 1")
    dataset = GoProTestDataset(args.data)
    runner = EnsembleRunner(open_runner(args), args.self_ensemble)
    check_task(runner, ("deblurring",), "test_deblurring_gopro.py", args.any_task)
    gallery = Gallery(args.gallery) if args.gallery > 0 else None
    res = evaluate_pairs(runner, dataset, args.save_dir, args.timing, args.max_images, gallery=gallery)
    tail = f" | {res['seconds']:.3f} s/image on {runner.device}" if args.timing else ""
    ens = "" if args.self_ensemble == "none" else f" + self-ensemble {args.self_ensemble}"
    print(f"{runner.model_name}{ens} on {args.data}: {len(res['rows'])} images | PSNR {res['psnr']:.2f} dB | SSIM "
          f"{res['ssim']:.4f} | blurred input PSNR {res['input_psnr']:.2f} dB{tail}")
    if args.save_dir:
        atomic_write_text(os.path.join(args.save_dir, "results.csv"), results_csv(res))
        print(f"restored images and results.csv in {args.save_dir}")
    if gallery is not None:
        print(f"gallery of the worst and best images: "
              f"{gallery.write(os.path.join(args.save_dir or 'results/gopro', 'gallery.png'))}")
    raise_for_unreadable(res["unreadable"], res["total"], "scored without them")


if __name__ == "__main__":
    run_main(main)
