"""What every top-level script shares: a quiet Paddle import, one-line errors, common arguments.

Scripts end with ``if __name__ == "__main__": run_main(main)``.  Every bad-input error derives from
``utils.errors.UserError`` (missing files, unreadable images, bad data sets, wrong weights, unknown config keys,
unavailable devices, unusable output paths); ``run_main`` ends the process on one with a single ``error: ...``
line on stderr and exit status 2, and so it does for a command line that does not parse (``ArgumentParser``) and
for a file the system refuses (no permission, read-only, no space).  Progress bars are cleared first, so the line
stands alone.  Anything else is a bug and keeps its traceback.  Ctrl-C ends with ``interrupted`` (and what can be
resumed, when the command says) and status 130.
"""
import argparse
import errno
import os
import sys
import warnings

from .errors import ConfigError, UserError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# errors of the system that name a file the user can fix (permissions, read-only or full disks, bad paths)
USER_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR,
               errno.ENAMETOOLONG}


def quiet_paddle():
    """Silence the compiler-cache notice Paddle 3.3.1 prints on every import (not an error users can act on)."""
    warnings.filterwarnings("ignore", message="No ccache found")


def clear_progress_bars():
    """Close every open tqdm bar, so that what is printed next starts on a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ()) or ()):
        try:
            bar.close()
        except Exception:  # a bar must never hide the error being reported
            pass
    sys.stdout.flush()


def _fail(message, status=2):
    clear_progress_bars()
    print(message, file=sys.stderr)
    sys.exit(status)


def run_main(main, argv=None):
    quiet_paddle()
    try:
        return main(argv)
    except UserError as exc:
        _fail(f"error: {' '.join(str(exc).split())}")
    except KeyboardInterrupt as exc:
        detail = " ".join(str(exc).split())
        _fail("interrupted" + (f": {detail}" if detail else ""), 130)
    except OSError as exc:
        if exc.errno in USER_ERRNOS and exc.filename:
            _fail(f"error: {exc.filename}: {exc.strerror}")
        raise


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the scripts' conventions: the docstring shown as written, and a command line that does not
    parse reported as one ``error: ...`` line (a ConfigError) instead of the usage text."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise ConfigError(f"{message} (see {self.prog} --help)")


def _int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


positive_int = _int_at_least(1)       # counts: batch sizes, images, iterations, workers, ...
non_negative_int = _int_at_least(0)   # sizes where 0 switches something off (--crop 0, --tile 0)


def positive_float(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def folder(text):
    """argparse type of a folder a command writes into: not an existing file, not a file name."""
    from .fileio import looks_like_file

    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    if not os.path.isdir(text) and looks_like_file(text):
        raise argparse.ArgumentTypeError(f"{text} looks like a file name; give a folder (it is created if needed)")
    return text


def add_task_argument(parser):
    """--any-task: run a network whose task differs from the script's (a deblurring network on noisy images...)."""
    parser.add_argument("--any-task", "--any_task", action="store_true",
                        help="run the network even when it was made for another task than this script's")
    return parser


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
