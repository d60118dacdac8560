"""Parameters and convolution multiply-accumulates (GMACs) of every registered network, counted with hooks.

    python tools/model_card.py                                 # all networks at 256 x 256 and 720 x 1280
    python tools/model_card.py --models MIRNet_v2 --sizes 256x256 --json output/model_card.json

Counts come from one forward pass per size (a 720 x 1280 pass of MIRNetV2 needs a few GB of memory).
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def size_arg(text):
    h, x, w = text.lower().partition("x")
    if not (x and h.isdigit() and w.isdigit() and int(h) > 0 and int(w) > 0):
        raise argparse.ArgumentTypeError(f"size must look like 256x256, got {text!r}")
    return int(h), int(w)


def main(argv=None):
    from networks import NETWORKS
    from utils.cli import ArgumentParser
    from utils.config import model_overrides
    from utils.deploy.model_card import card_table, model_card
    from utils.errors import UserError
    from utils.fileio import atomic_write_text, output_file

    p = ArgumentParser(description=__doc__)
    p.add_argument("--models", nargs="+", help="registered network names (default: all)")
    p.add_argument("--sizes", nargs="+", type=size_arg, default=[(256, 256), (720, 1280)], help="HxW sizes")
    p.add_argument("-o", "--override", action="append", default=[], help="MODEL.key=value network argument")
    p.add_argument("--json", help="also write the cards to this JSON file")
    args = p.parse_args(argv)
    if args.json:
        output_file(args.json, "--json")
    models = args.models or sorted(NETWORKS)
    unknown = [m for m in models if m not in NETWORKS]
    if unknown:
        raise UserError(f"unknown model(s) {unknown}; registered: {', '.join(sorted(NETWORKS))}")
    cfgs = {m: {"name": m, **args_} for m, args_ in model_overrides(args.override, models).items()}
    cards = []
    for m in models:
        try:
            cards.append(model_card(cfgs[m], args.sizes))
        except (TypeError, ValueError) as exc:
            raise UserError(f"cannot build {cfgs[m]}: {exc}") from None
    print(card_table(cards))
    if args.json:
        atomic_write_text(args.json, json.dumps(cards, indent=2) + "\n")
    return cards


if __name__ == "__main__":
    sys.path.insert(0, ROOT)  # run as a script: the repository's packages
    from utils.cli import run_main

    run_main(main)
