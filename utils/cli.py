"""What every top-level script shares: a quiet Paddle import, one-line errors, common arguments.

Scripts end with ``if __name__ == "__main__": run_main(main)``.  Known bad-input errors (missing files,
unreadable images, bad data sets, wrong weights, unknown config keys, unavailable devices) then end the
process with a single ``error: ...`` line on stderr and exit status 2; anything else is a bug and keeps its traceback.
"""
import os
import sys
import warnings

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UserError(RuntimeError):
    """Bad input from the user, reported in one line."""


def quiet_paddle():
    """Silence the compiler-cache notice Paddle 3.3.1 prints on every import (not an error users can act on)."""
    warnings.filterwarnings("ignore", message="No ccache found")


def _user_errors():
    from dataloaders import DatasetError

    from .checkpoint import WeightsError
    from .config import ConfigError
    from .device import DeviceError
    from .image_io import ImageError

    return (UserError, WeightsError, ConfigError, DeviceError, ImageError, DatasetError, FileNotFoundError)


def run_main(main, argv=None):
    quiet_paddle()
    try:
        return main(argv)
    except _user_errors() as exc:
        msg = " ".join(str(exc).split())
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def add_device_argument(parser, default="auto"):
    parser.add_argument("--device", default=default,
                        help="auto | cpu | gpu[:id] | npu[:id] | <custom device>[:id] (default: %(default)s)")
    return parser
