"""Cut SIDD-Medium sRGB into training patches: DST/input/*.png (noisy) and DST/groundtruth/*.png (clean).

    python generate_patches_SIDD.py --src data/SIDD_Medium_Srgb --dst data/SIDD_patches/train \\
        --ps 256 --num_patches 300 --num_cores 10            # random crops (default)
    python generate_patches_SIDD.py --mode grid --ps 512 --overlap 128 ...   # the official grid

Validation needs no preparation: point a config at the folder holding ValidationNoisyBlocksSrgb.mat and
ValidationGtBlocksSrgb.mat (dataset type SIDDValidationBlocks).  Re-running with the same settings rewrites
the same files; unreadable or mismatched pairs are reported and skipped.
"""
from utils.cli import ArgumentParser, folder, non_negative_int, positive_int, run_main


def main(argv=None):
    from utils.device import available_cores

    p = ArgumentParser(description=__doc__)
    p.add_argument("--src", default="data/SIDD_Medium_Srgb", help="SIDD-Medium sRGB folder (holding Data/ or the "
                   "scene folders) (default: %(default)s)")
    p.add_argument("--dst", type=folder, default="data/SIDD_patches/train", help="output folder (default: %(default)s)")
    p.add_argument("--mode", choices=("random", "grid"), default="random",
                   help="random crops per pair, or the official overlapping grid (default: %(default)s)")
    p.add_argument("--ps", type=positive_int, default=None, help="patch size (default: 256 random, 512 grid)")
    p.add_argument("--num_patches", type=positive_int, default=300, help="random crops per pair (default: %(default)s)")
    p.add_argument("--overlap", type=non_negative_int, default=128,
                   help="grid overlap in pixels (default: %(default)s)")
    p.add_argument("--num_cores", type=positive_int, default=min(10, available_cores()),
                   help="worker processes (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random crops (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace patches made earlier with other settings")
    args = p.parse_args(argv)

    from dataloaders.prepare.sidd_patches import generate_patches
    from utils.errors import UserError

    ps = args.ps or (512 if args.mode == "grid" else 256)
    written, used, problems = generate_patches(args.src, args.dst, args.mode, ps, args.num_patches, args.overlap,
                                               args.seed, args.num_cores, args.overwrite)
    for path, reason in problems:
        print(f"skipped: {path}: {reason}")
    print(f"wrote {written} patch pairs from {used} image pairs to {args.dst}; skipped {len(problems)} "
          f"image(s) with problems")
    if not used:
        raise UserError(f"no usable image pairs under {args.src}")


if __name__ == "__main__":
    run_main(main)
