"""What every top-level script shares: a quiet Paddle import, one-line errors, common arguments.

Scripts end with ``if __name__ == "__main__": run_main(main)``; ``run_main`` first chooses the math library's
set-up for this CPU (``utils.device.configure_cpu_math``), which must happen before Paddle loads, so the
scripts import Paddle only inside ``main()``.  Every bad-input error derives from
``utils.errors.UserError`` (missing files, unreadable images, bad data sets, wrong weights, unknown config keys,
unavailable devices); ``run_main`` ends the process on one with a single ``error: ...`` line on stderr and exit
status 2.  Anything else is a bug and keeps its traceback.
"""
import argparse
import os
import sys
import warnings

from .device import configure_cpu_math
from .errors import UserError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quiet_paddle():
    """Silence the compiler-cache notice Paddle 3.3.1 prints on every import (not an error users can act on)."""
    warnings.filterwarnings("ignore", message="No ccache found")


def run_main(main, argv=None):
    configure_cpu_math()
    quiet_paddle()
    try:
        return main(argv)
    except UserError as exc:
        msg = " ".join(str(exc).split())
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def add_device_argument(parser, default="auto"):
    """``--device``; ``default=None`` leaves the choice to the run config's ``device`` key (auto unless it says
    otherwise), as the training scripts do."""
    shown = "%(default)s" if default is not None else "auto, or the config's device"
    parser.add_argument("--device", default=default,
                        help=f"auto | cpu | gpu[:id] | npu[:id] | <custom device>[:id] (default: {shown})")
    return parser


def str2bool(v):
    """argparse type for TIPC-style boolean values (``--use-gpu=True``)."""
    if isinstance(v, bool):
        return v
    if str(v).lower() in ("true", "t", "1", "yes", "y"):
        return True
    if str(v).lower() in ("false", "f", "0", "no", "n", "none", "null"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {v!r}")
