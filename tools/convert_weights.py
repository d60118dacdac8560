"""Convert an official checkpoint into Paddle weights (.pdparams), without PyTorch installed.

    python tools/convert_weights.py --arch MIRNet_v2 --src real_denoising.pth \
        --dst pretrained_models/real_denoising.pdparams

The file is checked against the network: a checkpoint of another architecture or configuration is refused
with the first mismatching keys.  ``-o key=value`` sets network arguments for non-default configurations.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    from utils.cli import ArgumentParser
    from utils.weights import READERS

    p = ArgumentParser(description=__doc__)
    p.add_argument("--arch", required=True, choices=sorted(READERS), help="architecture of the checkpoint")
    p.add_argument("--src", required=True, help="official checkpoint (.pth / .pkl / .mat)")
    p.add_argument("--dst", required=True, help="output .pdparams")
    p.add_argument("--key", default=None, help="entry of the checkpoint dict holding the weights (auto)")
    p.add_argument("-o", "--network-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="network constructor argument, e.g. -o n_feat=64 (repeatable)")
    return p.parse_args(argv)


def main(argv=None):
    from utils.checkpoint import save_weights
    from utils.config import parse_value
    from utils.errors import ConfigError, WeightsError
    from utils.fileio import check_not_inputs, output_file
    from utils.weights import convert_official

    args = parse_args(argv)
    cfg = {}
    for item in args.network_opt:
        k, sep, v = item.partition("=")
        if not sep:
            raise ConfigError(f"-o expects KEY=VALUE, got {item!r}")
        cfg[k.strip()] = parse_value(v)
    if not os.path.isfile(args.src):
        raise WeightsError(f"source checkpoint not found: {args.src}")
    check_not_inputs([args.dst], [args.src], "give --dst another name (the official file stays as it is)")
    output_file(args.dst, "--dst")
    state = convert_official(args.arch, args.src, cfg, key=args.key)
    import paddle

    save_weights({k: paddle.to_tensor(v) for k, v in state.items()}, args.dst)
    n = sum(int(v.size) for v in state.values())
    print(f"wrote {args.dst}: {len(state)} tensors, {n:,} parameters ({args.arch})")


if __name__ == "__main__":
    sys.path.insert(0, ROOT)  # run as a script: the repository's packages
    from utils.cli import run_main

    run_main(main)
