"""Read PyTorch checkpoints (``.pth`` / ``.pkl`` written by ``torch.save``) without PyTorch.

Both serialisation formats are supported: the zip archive (PyTorch >= 1.6: a pickle plus one raw storage
file per tensor) and the legacy stream (pickled header, object, storage keys, then raw storages).  The
unpickler resolves only tensor-rebuilding functions, ``OrderedDict`` and numpy's own reconstructors; any
other class in the file (optimizer or scheduler objects, argparse namespaces) becomes an inert placeholder,
so reading a file never runs code from it.  Tensors come back as numpy arrays.
"""
import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from ..errors import WeightsError

try:
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _np_multiarray

_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_HEAD = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8"  # the magic number as the legacy format pickles it


class TorchReadError(WeightsError):
    """A file that is not a readable ``torch.save`` checkpoint."""


class _Opaque:
    """Stands in for any class the checkpoint names that is not needed to read tensors."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):
        return _Opaque(*args)


class _Deferred:
    def __init__(self, fn):
        self.fn = fn


def _storage_dtype(storage_type):
    name = getattr(storage_type, "__name__", str(storage_type))
    if name not in _DTYPES:
        raise TorchReadError(f"unsupported tensor storage type {name!r}")
    return _DTYPES[name]


def _to_array(raw, dtype):
    if dtype == "bfloat16":  # numpy has no bfloat16: widen to float32 bit-exactly
        return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))


def _rebuild_tensor(storage, offset, size, stride, *unused):
    if callable(storage):  # legacy format: storages follow the object in the stream
        return _Deferred(lambda: _rebuild_tensor(storage(), offset, size, stride))
    flat = storage
    if len(size) == 0:
        return flat[offset].copy()
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=tuple(size),
                                           strides=tuple(s * item for s in stride))
    return np.array(view)


def _rebuild_parameter(data, *unused):
    return data


class _Unpickler(pickle.Unpickler):
    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
        ("numpy", "dtype"): np.dtype, ("numpy", "ndarray"): np.ndarray,
        ("numpy.core.multiarray", "scalar"): _np_multiarray.scalar,
        ("numpy._core.multiarray", "scalar"): _np_multiarray.scalar,
        ("numpy.core.multiarray", "_reconstruct"): _np_multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _np_multiarray._reconstruct,
    }

    def __init__(self, file, load_storage):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name.endswith("Storage"):
            return type(name, (), {})
        return type(name, (_Opaque,), {})

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise TorchReadError(f"unexpected persistent id {pid!r}")
        return self._load_storage(pid)


def _read_zip(path):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl")]
        if not pkl:
            raise TorchReadError(f"{path}: zip archive without data.pkl (not a PyTorch checkpoint)")
        prefix = pkl[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in names and zf.read(f"{prefix}byteorder").strip() != b"little":
            raise TorchReadError(f"{path}: big-endian checkpoints are not supported")
        cache = {}

        def load_storage(pid):
            _, storage_type, key, _location, _numel = pid[:5]
            if key not in cache:
                cache[key] = _to_array(zf.read(f"{prefix}data/{key}"), _storage_dtype(storage_type))
            return cache[key]

        return _Unpickler(io.BytesIO(zf.read(pkl[0])), load_storage).load()


def _read_legacy(path):
    with open(path, "rb") as f:
        magic = pickle.load(f)
        if magic != _LEGACY_MAGIC:
            raise TorchReadError(f"{path}: not a PyTorch checkpoint (bad magic number)")
        pickle.load(f)  # protocol version
        pickle.load(f)  # sys info
        dtypes, arrays = {}, {}

        def load_storage(pid):
            _, storage_type, key, _location, _numel = pid[:5]
            view = pid[5] if len(pid) > 5 else None  # (view_key, offset, view_size)
            dtypes.setdefault(key, _storage_dtype(storage_type))

            def resolve():
                return arrays[key] if view is None else arrays[key][view[1]: view[1] + view[2]]
            return resolve

        obj = _Unpickler(f, load_storage).load()
        for key in pickle.load(f):
            numel = struct.unpack("<q", f.read(8))[0]
            itemsize = 2 if dtypes[key] == "bfloat16" else np.dtype(dtypes[key]).itemsize
            raw = f.read(numel * itemsize)
            if len(raw) < numel * itemsize:
                raise TorchReadError(f"{path} is truncated (a tensor ends early); download or copy it again")
            arrays[key] = _to_array(raw, dtypes[key])
    return _resolve_deferred(obj)


def _resolve_deferred(obj):
    if isinstance(obj, _Deferred):
        return obj.fn()
    if isinstance(obj, dict):
        return type(obj)((k, _resolve_deferred(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve_deferred(v) for v in obj)
    return obj


def load_torch_file(path):
    """Load a ``torch.save`` file into nested Python containers holding numpy arrays.  TorchReadError (one line)
    for an empty, truncated or corrupt checkpoint, and for a file that is not one."""
    size = os.path.getsize(path)
    if size == 0:
        raise TorchReadError(f"{path} is empty (0 bytes): download or copy it again")
    with open(path, "rb") as f:
        head = f.read(16)
    ours = any(head.startswith(m) or (len(head) < len(m) and m.startswith(head)) for m in (b"PK\x03\x04", _LEGACY_HEAD))
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        if head.startswith(b"PK\x03\x04"):
            raise TorchReadError(f"{path} is truncated ({size:,} bytes: an incomplete zip archive); download or copy "
                                 "it again")
        return _read_legacy(path)
    except TorchReadError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, KeyError, ValueError) as exc:
        detail = f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
        if ours:
            raise TorchReadError(f"{path} is truncated or corrupt ({size:,} bytes; {detail}); download or copy it "
                                 "again") from None
        raise TorchReadError(f"{path} is not a PyTorch checkpoint ({detail})") from None
