"""Prepare the GoPro deblurring data set: flatten the official GOPRO_Large download into the layout the
training and evaluation scripts read, without moving or changing the downloaded files.

    GOPRO_Large/{train,test}/<SEQ>/{blur,sharp}/<name>.png  ->  GOPRO/{train,test}/{blur,sharp}/<SEQ>_<name>.png

    python prepare_GoPro.py --root_src data/GOPRO_Large --root_dst data/GOPRO           # copies
    python prepare_GoPro.py --root_src data/GOPRO_Large --root_dst data/GOPRO --link    # hard links, no extra space

Every file is written under a temporary name and renamed, and files already in place are skipped, so an
interrupted run can simply be started again.
"""
from utils.cli import ArgumentParser, folder, run_main


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--root_src", "--root-src", default="data/GOPRO_Large",
                   help="the unpacked GOPRO_Large folder (default: %(default)s)")
    p.add_argument("--root_dst", "--root-dst", type=folder, default="data/GOPRO",
                   help="output folder, outside the source (default: %(default)s)")
    p.add_argument("--blur-gamma", action="store_true",
                   help="take the blurred frames from blur_gamma/ (averaged through a gamma 2.2 camera response) "
                        "instead of blur/ (plain average; the MIMO-UNet models were trained on blur/)")
    p.add_argument("--link", action="store_true",
                   help="hard-link instead of copying (same file system; the originals stay untouched)")
    p.add_argument("--splits", nargs="+", default=["train", "test"], choices=["train", "test"])
    args = p.parse_args(argv)

    from dataloaders.prepare.gopro import flatten_gopro

    blur_dir = "blur_gamma" if args.blur_gamma else "blur"
    done = flatten_gopro(args.root_src, args.root_dst, blur_dir=blur_dir, link=args.link, splits=args.splits)
    counts = ", ".join(f"{split}: {done[split]} pairs" for split in args.splits)
    print(f"{args.root_dst}: {counts} ({'linked' if args.link else 'copied'} from {blur_dir}/ and sharp/; "
          f"{done['skipped']} files already in place)")


if __name__ == "__main__":
    run_main(main)
