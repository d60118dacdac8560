"""Fold a trained DAE_BN checkpoint (BatchNorm) into the deployable DAE weights that DMSP uses.

    python tools/fold_dae.py --src output/dae/best.pdparams --dst pretrained_models/DAE_mine.pdparams

The network configuration comes from -c CONFIG, else the config.yml saved beside the checkpoint, else the
defaults (``-o features=32`` etc. override).  The folded network computes what DAE_BN computes in eval mode.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    from utils.cli import ArgumentParser
    from utils.config import parse_value
    from utils.errors import UserError

    p = ArgumentParser(description=__doc__)
    p.add_argument("--src", required=True, help="trained DAE_BN weights or checkpoint (.pdparams)")
    p.add_argument("--dst", required=True, help="output .pdparams of the folded DAE")
    p.add_argument("-c", "--config", default=None, help="training config (its 'network' section)")
    p.add_argument("--key", default=None, help="entry of the checkpoint holding the weights (auto)")
    p.add_argument("-o", "--network-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="network argument, e.g. -o features=32 (repeatable)")
    args = p.parse_args(argv)

    from networks import DAE_BN, build_network
    from utils.checkpoint import WeightsError, check_state_dict, read_state_dict, save_weights
    from utils.fileio import check_not_inputs, output_file

    state = read_state_dict(args.src, args.key)
    check_not_inputs([args.dst], [args.src, args.config], "give --dst another name")
    cfg = {"name": "DAE_BN"}
    if args.config or os.path.isfile(os.path.join(os.path.dirname(os.path.abspath(args.src)), "config.yml")):
        from utils.checkpoint import network_config_for

        cfg = network_config_for(args.src, args.config)
    for item in args.network_opt:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"-o expects KEY=VALUE, got {item!r}")
        cfg[key.strip()] = parse_value(value)
    if cfg.get("name") != "DAE_BN":
        raise WeightsError(f"{args.src}: the network is {cfg.get('name')!r}; only DAE_BN checkpoints fold")
    net = build_network(cfg)
    check_state_dict(net.state_dict(), state, source=f"{args.src} (expected a DAE_BN checkpoint)")
    net.set_state_dict(state)
    assert isinstance(net, DAE_BN)
    folded = net.fold()
    save_weights(folded, output_file(args.dst, "--dst"))
    print(f"wrote {args.dst}: DAE with {len(folded.state_dict())} tensors (features={net.features}, "
          f"depth={net.depth})")


if __name__ == "__main__":
    sys.path.insert(0, ROOT)  # run as a script: the repository's packages
    from utils.cli import run_main

    run_main(main)
