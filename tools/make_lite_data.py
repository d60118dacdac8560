"""Build the offline lite data sets (no download) used by the quick start, the tests and TIPC.

    python tools/make_lite_data.py --task all --out data/lite
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    from dataloaders.prepare.lite_data import LITE_TASKS
    from utils.cli import ArgumentParser, folder
    from utils.fileio import output_dir

    p = ArgumentParser(description=__doc__)
    p.add_argument("--task", default="all", choices=["all", *sorted(LITE_TASKS)])
    p.add_argument("--out", type=folder, default="data/lite", help="output root (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    output_dir(args.out, "--out")
    for name in (sorted(LITE_TASKS) if args.task == "all" else [args.task]):
        print(f"[{name}] {LITE_TASKS[name](args.out, args.seed)}")


if __name__ == "__main__":
    sys.path.insert(0, ROOT)  # run as a script: the repository's packages
    from utils.cli import run_main

    run_main(main)
