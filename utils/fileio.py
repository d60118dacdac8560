"""Safe writing: atomic files, checked output folders, outputs that never replace an input.

- Atomic writes go to a hidden temporary file in the target's folder, ``.<base>.<pid>-<random>.tmp<ext>``, which
  is fsynced and renamed over the target: an interrupted process leaves the old file or the new one, never a
  truncated one.  A process killed mid-write (``kill -9``) leaves its temporary behind; ``clean_temporaries``
  removes those of processes that are no longer running, and every output folder opened with ``output_dir``
  (and the training engine's folders) is cleaned that way when a command starts.
- ``output_dir`` creates and checks a folder a command writes into: not a file, not named like a file, writable.
- ``check_not_inputs`` refuses outputs that are one of the command's inputs (same real path or same inode);
  ``check_separate_trees`` refuses an output tree inside an input tree or the reverse.
"""
import contextlib
import os
import re
import secrets
import shutil
import tempfile

from .errors import PathError

# the temporaries of this module, of any process: .<base>.<pid>-<random>.tmp<ext> (older ones: no pid)
_TEMPORARY = re.compile(r"^\..+\.(?:(?P<pid>\d+)-)?[a-z0-9_]{8}\.tmp(?:\.[^.]*)?$")
# names that are files, not folders, when given to a folder option
FILE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pdparams", ".pdstates", ".pdmodel",
                   ".pdiparams", ".onnx", ".json", ".yml", ".yaml", ".npy", ".npz", ".mat", ".pth", ".pkl", ".txt",
                   ".log", ".csv", ".md", ".zip", ".tar", ".gz")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prefix(base):
    return f".{base}.{os.getpid()}-"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the target's folder; on success it is renamed to ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=_prefix(base), suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates files private; use the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def temporary_name(path):
    """A free hidden name beside ``path`` that ``clean_temporaries`` recognises (nothing is created)."""
    folder, name = os.path.split(os.path.abspath(path))
    base, ext = os.path.splitext(name)
    return os.path.join(folder, f"{_prefix(base)}{secrets.token_hex(4)}.tmp{ext}")


@contextlib.contextmanager
def temporary_dir(parent, tag):
    """A hidden temporary folder inside ``parent`` (removed afterwards), named as ``clean_temporaries`` expects."""
    tmp = tempfile.mkdtemp(prefix=_prefix(tag), suffix=".tmp", dir=parent)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def clean_temporaries(folder):
    """Remove the temporaries (files or folders) left in ``folder`` by processes that are no longer running;
    returns their names.  Those of running processes (another command writing there now) are kept."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = _TEMPORARY.match(name)
        if not m or (m.group("pid") and _running(int(m.group("pid")))):
            continue
        path = os.path.join(folder, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(name)
        except OSError:
            pass
    return removed


def looks_like_file(path):
    return os.path.splitext(os.path.basename(os.path.normpath(str(path))))[1].lower() in FILE_EXTENSIONS


def output_dir(path, option="the output folder"):
    """Create (if needed) and check a folder a command writes into; remove stale temporaries; returns ``path``.
    PathError when it is a file, looks like a file name (``result.png``) or cannot be written."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise PathError(f"{option} {path} is a file, not a folder; give a folder")
    if not os.path.isdir(path) and looks_like_file(path):
        raise PathError(f"{option} {path} looks like a file name; give a folder (it is created if needed)")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise PathError(f"cannot create {option} {path}: {exc.strerror or exc}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=_prefix("write-check"), suffix=".tmp", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise PathError(f"cannot write into {option} {path}: {exc.strerror or exc}") from None
    clean_temporaries(path)
    return path


def output_file(path, option="the output file"):
    """Check a file a command writes (its folder is created and checked as ``output_dir``); returns ``path``."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise PathError(f"{option} {path} is a folder; give a file name")
    output_dir(os.path.dirname(os.path.abspath(path)), f"the folder of {option}")
    return path


def _identity(path):
    try:
        st = os.stat(path)
        return st.st_dev, st.st_ino
    except OSError:
        return None


def check_not_inputs(outputs, inputs, hint=""):
    """PathError when one of ``outputs`` is one of ``inputs`` (the same real path or, for hard links, the same
    inode): writing it would replace the input."""
    by_path, by_inode = {}, {}
    for inp in inputs:
        if inp:
            by_path.setdefault(os.path.realpath(inp), inp)
            ident = _identity(inp)
            if ident:
                by_inode.setdefault(ident, inp)
    for out in outputs:
        inp = by_path.get(os.path.realpath(out)) or by_inode.get(_identity(out))
        if inp:
            raise PathError(f"the output {out} would replace the input {inp}" + (f"; {hint}" if hint else ""))


def inside(path, folder):
    """Whether ``path`` is ``folder`` or lies inside it (real paths)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_separate_trees(source, dest, source_option="the source", dest_option="the destination"):
    """PathError when the output tree ``dest`` and the input tree ``source`` are the same or one holds the other."""
    if inside(dest, source) or inside(source, dest):
        raise PathError(f"{dest_option} {dest} and {source_option} {source} overlap; give a destination outside "
                        "the source (and not around it)")


def atomic_write_bytes(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_paddle_save(obj, path):
    """``paddle.save`` that never leaves a half-written file behind."""
    import paddle

    with atomic_path(path) as tmp:
        paddle.save(obj, tmp)
