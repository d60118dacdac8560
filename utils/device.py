"""Device selection shared by every script: ``auto``, ``cpu``, ``gpu[:id]``, ``npu[:id]`` or any custom device.

``auto`` picks a GPU if this Paddle build sees one, else the first registered custom device with a card
(Ascend NPUs through the ``paddle-custom-npu`` plugin register as ``npu``), else the CPU.

A device without an id lets Paddle choose the card: ``paddle.set_device('gpu')`` reads ``FLAGS_selected_gpus``
and ``paddle.set_device('npu')`` reads ``FLAGS_selected_npus`` (card 0 when unset).  Under
``python -m paddle.distributed.launch`` the launcher sets that variable to each process's own card, so the
training scripts need no device flag there; an explicit id that contradicts the launcher's choice in a
multi-process run is refused (every process would otherwise pile onto the same card).

Asking for a device this build lacks raises ``DeviceError`` with a one-line message saying what is available
and what to install; a build that supports the device but sees no card says where to look instead.

``configure_cpu_math`` chooses the math library's set-up for the CPU the process runs on; it has to run before
Paddle loads, so the scripts call it from ``utils.cli.run_main`` (library users call it themselves).
"""
import os
import re

from .errors import DeviceError

INSTALL_HINTS = {
    "gpu": "install the CUDA build of Paddle on a machine with an NVIDIA driver: pip uninstall paddlepaddle && "
           "pip install paddlepaddle-gpu==3.3.1 -i https://www.paddlepaddle.org.cn/packages/stable/cu126/ "
           "(see docs/devices.md)",
    "npu": "install the Ascend plugin over the CPU build on a machine with CANN: pip install paddlepaddle==3.3.1 "
           "paddle-custom-npu -i https://www.paddlepaddle.org.cn/packages/stable/npu/ (see docs/devices.md)",
}
VISIBILITY_HINTS = {
    "gpu": "check nvidia-smi and CUDA_VISIBLE_DEVICES",
    "npu": "check npu-smi info and ASCEND_RT_VISIBLE_DEVICES",
}
ALIASES = {"cuda": "gpu", "ascend": "npu"}


def available_devices(cuda_count=None, custom_types=None, include_empty=False):
    """Map of usable device type -> number of visible cards (``cpu`` always 1).

    ``include_empty`` also lists, with 0 cards, the types this build supports but sees no card of.  Arguments
    override detection (tests): ``cuda_count`` an int (0 = no CUDA in the build), ``custom_types`` names or
    (name, count) pairs."""
    import paddle

    found = {"cpu": 1}
    if cuda_count is None:
        if paddle.is_compiled_with_cuda():
            found["gpu"] = int(paddle.device.cuda.device_count())
    elif cuda_count:
        found["gpu"] = int(cuda_count)
    detect = custom_types is None
    if detect:
        custom_types = paddle.device.get_all_custom_device_type() or []
    for t in custom_types:
        if isinstance(t, (tuple, list)):
            t, n = t
        elif detect:
            try:
                n = sum(1 for d in paddle.device.get_available_custom_device() if d.split(":")[0] == t)
            except Exception:  # counting is best effort; the type itself is registered
                n = 1
        else:
            n = 1
        found[str(t)] = max(int(n), 0)
    return found if include_empty else {k: n for k, n in found.items() if n}


def describe(devices):
    """'cpu, gpu x2, npu (no card visible)'."""
    return ", ".join(k if k == "cpu" else (f"{k} x{n}" if n else f"{k} (no card visible)")
                     for k, n in devices.items())


def launcher_card(kind, env=None):
    """The card ``paddle.distributed.launch`` gave this process for device type ``kind`` (None if unset)."""
    env = os.environ if env is None else env
    first = str(env.get(f"FLAGS_selected_{kind}s", "")).split(",")[0].strip()
    return int(first) if first.isdigit() else None


def launcher_world_size(env=None):
    env = os.environ if env is None else env
    value = str(env.get("PADDLE_TRAINERS_NUM", "1")).strip()
    return int(value) if value.isdigit() else 1


def resolve_device(spec="auto", devices=None, env=None):
    """Turn a user's device string into a Paddle device string, checking that it exists.

    ``devices`` (type -> card count) and ``env`` (the process environment) can be given to simulate a
    machine; by default they are detected."""
    devices = available_devices(include_empty=True) if devices is None else devices
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if devices.get("gpu"):
            return "gpu"
        custom = [t for t, n in devices.items() if t not in ("cpu", "gpu") and n]
        return custom[0] if custom else "cpu"
    m = re.fullmatch(r"([a-z_][a-z0-9_]*)(?::(\d+))?", spec)
    if not m:
        raise DeviceError(f"invalid device {spec!r}: use auto, cpu, gpu[:id], npu[:id] or <custom>[:id]")
    kind, idx = ALIASES.get(m.group(1), m.group(1)), m.group(2)
    if kind not in devices:
        hint = INSTALL_HINTS.get(kind, f"install the Paddle plugin that registers the {kind!r} device type")
        raise DeviceError(f"device {spec!r} is not available in this Paddle build (available: {describe(devices)}); "
                          f"to use it, {hint}")
    if kind == "cpu":
        return "cpu"
    if not devices[kind]:
        hint = VISIBILITY_HINTS.get(kind, f"check the driver and {kind.upper()}_VISIBLE_DEVICES")
        raise DeviceError(f"device {spec!r}: this Paddle build supports {kind} but sees no card ({hint})")
    if idx is not None and int(idx) >= devices[kind]:
        raise DeviceError(f"device {spec!r} does not exist: this machine has {devices[kind]} {kind} card(s)")
    assigned = launcher_card(kind, env)
    if idx is not None and assigned is not None and launcher_world_size(env) > 1 and int(idx) != assigned:
        raise DeviceError(f"device {spec!r} contradicts paddle.distributed.launch, which gave this process "
                          f"{kind}:{assigned} (FLAGS_selected_{kind}s); pass --device {kind} without an id and "
                          f"choose the cards with the launcher's --devices")
    return kind if idx is None else f"{kind}:{idx}"


def available_cores():
    """CPU cores this process may run on (``taskset`` and container limits included)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def cpu_threads(env=None, cores=None):
    """Math-library threads for one CPU process: ``OMP_NUM_THREADS`` when it asks for 2 or more, else the
    cores this process may run on (``taskset`` limits them) shared among the processes that
    ``paddle.distributed.launch`` started on this machine.

    Importing Paddle sets an unset ``OMP_NUM_THREADS`` to 1 and its dygraph kernels then use one thread, which
    leaves the rest of the CPU idle; a 1 is therefore read as that default, not as a request."""
    env = os.environ if env is None else env
    value = str(env.get("OMP_NUM_THREADS", "")).strip()
    if value.isdigit() and int(value) > 1:
        return int(value)
    cores = available_cores() if cores is None else cores
    local = str(env.get("PADDLE_LOCAL_SIZE", "")).strip()
    procs = int(local) if local.isdigit() and int(local) > 0 else launcher_world_size(env)
    return max(1, cores // max(procs, 1))


def _cpuinfo_fields(text):
    """(vendor_id, set of flags) of the first processor in a /proc/cpuinfo text."""
    vendor, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return vendor, flags


def cpu_math_settings(cpuinfo=None):
    """The environment the math libraries inside Paddle's CPU wheel should get on this CPU: a dict of variables.

    ``MKL_DEBUG_CPU_TYPE=5`` on AMD CPUs with AVX2: the MKL in the wheel (libmklml_intel.so) otherwise takes a
    generic, non-AVX2 code path on CPUs that are not Intel's (its single-precision GEMM about 3 x slower; dygraph
    training steps about 1.6 x slower).  Nothing on Intel and other CPUs: MKL already dispatches well there, and
    forcing a type would take AVX-512 away from Intel CPUs.  ``cpuinfo`` is the text of /proc/cpuinfo (read when
    None; no setting when it cannot be read)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read(1 << 16)
        except OSError:
            return {}
    vendor, flags = _cpuinfo_fields(cpuinfo)
    if vendor == "AuthenticAMD" and "avx2" in flags:
        return {"MKL_DEBUG_CPU_TYPE": "5"}
    return {}


def configure_cpu_math(environ=None, cpuinfo=None):
    """Put ``cpu_math_settings()`` into ``environ`` (default ``os.environ``) where the user has not set the
    variable already (a value of their own, even an empty one, wins); returns what it set.

    MKL reads the variable once, at its first call: call this before ``import paddle``.  The training and
    inference scripts do so in ``utils.cli.run_main``; nothing is changed at import time."""
    environ = os.environ if environ is None else environ
    chosen = {k: v for k, v in cpu_math_settings(cpuinfo).items() if k not in environ}
    environ.update(chosen)
    return chosen


def set_device(spec="auto"):
    """Resolve ``spec`` and make it Paddle's current device; returns the device string.

    On the CPU it also sets the math-library thread count (``cpu_threads``)."""
    import paddle

    device = resolve_device(spec)
    paddle.set_device(device)
    if device == "cpu":
        paddle.base.core.set_num_threads(cpu_threads())
    return device


def device_type(device):
    """'gpu:1' -> 'gpu'."""
    return device.split(":", 1)[0]


def is_custom(device):
    """Whether ``device`` is a custom (plugin) device such as 'npu:0'."""
    return device_type(device) not in ("cpu", "gpu")
