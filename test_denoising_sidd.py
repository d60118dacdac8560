"""Evaluate a checkpoint or an exported model on the SIDD validation blocks (the official protocol) or on a
paired folder.

    python test_denoising_sidd.py --weights model_best.pdparams --mat-dir Datasets/test/SIDD --save-mat
    python test_denoising_sidd.py --weights W --data-dir data/lite/sidd/val --batch-size 4
    python test_denoising_sidd.py --model-dir output/inference --data-dir data/lite/sidd/val   # exported model

Every block is restored, clamped to [0, 1] and scored without rounding: PSNR, the scikit-image SSIM and the
MATLAB-style SSIM the SIDD benchmark uses (labelled; they differ by up to about 0.05).  Results go to
RESULT_DIR/metrics.json; --save-mat writes Idenoised.mat as the official scripts do, --save-images PNGs,
--gallery RESULT_DIR/gallery.png (input | output | ground truth crops of the worst and best blocks).
"""
from utils.cli import ArgumentParser, add_device_argument, folder, non_negative_int, positive_int, run_main


def main(argv=None):
    from utils.deploy.evaluation import evaluate_sidd, sidd_source, sidd_summary_line
    from utils.deploy.restoration import raise_for_unreadable
    from utils.deploy.runners import add_model_arguments, check_task, open_runner
    from utils.figures import Gallery
    from utils.fileio import output_dir

    p = ArgumentParser(description=__doc__)
    add_model_arguments(p)  # --weights / -c, or --model-dir / --backend
    src = p.add_mutually_exclusive_group()
    src.add_argument("--mat-dir", "--mat_dir", "--input_dir", dest="mat_dir", default="Datasets/test/SIDD",
                     help="folder with ValidationNoisyBlocksSrgb.mat and ValidationGtBlocksSrgb.mat "
                          "(default: %(default)s)")
    src.add_argument("--data-dir", "--data_dir", dest="data_dir", help="paired folder: input/ + groundtruth/")
    p.add_argument("--result-dir", "--result_dir", type=folder, default="results/sidd", help="(default: %(default)s)")
    p.add_argument("--save-mat", "--save_mat", action="store_true", help="write Idenoised.mat (float32)")
    p.add_argument("--save-images", "--save_images", action="store_true", help="write restored blocks as PNG")
    p.add_argument("--batch-size", "--batch_size", type=positive_int, default=1, help="blocks per forward pass")
    p.add_argument("--limit", type=positive_int, help="evaluate only the first N images (quick checks)")
    p.add_argument("--gallery", type=non_negative_int, nargs="?", const=3, default=0, metavar="N",
                   help="write RESULT_DIR/gallery.png: crops of the N worst and N best blocks by PSNR (alone: 3)")
    add_device_argument(p)
    args = p.parse_args(argv)
    source = sidd_source(args.mat_dir, args.data_dir)
    runner = open_runner(args)
    check_task(runner, ("denoising",), "test_denoising_sidd.py", args.any_task)
    output_dir(args.result_dir, "--result-dir")
    print(f"{runner.description}: {len(source)} block(s), batch size {args.batch_size}")
    summary = evaluate_sidd(runner, source, args.batch_size, args.result_dir, args.save_mat, args.save_images,
                            args.limit, gallery=Gallery(args.gallery) if args.gallery > 0 else None)
    print(sidd_summary_line(summary))
    if summary.get("gallery"):
        print(f"gallery of the worst and best blocks: {summary['gallery']}")
    print(f"results written to {args.result_dir}")
    raise_for_unreadable(summary.get("unreadable"), summary.get("total"), "scored without them")
    return summary


if __name__ == "__main__":
    run_main(main)
