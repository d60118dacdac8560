"""Device selection shared by every script: ``auto``, ``cpu``, ``gpu[:id]``, ``npu[:id]`` or any custom device.

``auto`` picks a GPU if this Paddle build has one, else the first registered custom device (Ascend NPUs
through the ``paddle-custom-npu`` plugin register as ``npu``), else the CPU.  A device without an id lets
Paddle choose the card, which under ``paddle.distributed.launch`` is the one assigned to this process.
Asking for a device this build lacks raises ``DeviceError`` with a one-line message saying what is
available and what to install.
"""
import re

INSTALL_HINTS = {
    "gpu": "install the CUDA build of Paddle (pip install paddlepaddle-gpu==3.3.1 -f the Paddle CUDA wheel index) "
           "on a machine with an NVIDIA driver",
    "npu": "install the Ascend plugin over the CPU build (pip install paddlepaddle==3.3.1 paddle-custom-npu) on a "
           "machine with CANN; see docs/devices.md",
}


class DeviceError(RuntimeError):
    pass


def available_devices(cuda_count=None, custom_types=None):
    """Map of device type -> number of cards (``cpu`` always 1).  Arguments override detection (tests)."""
    import paddle

    if cuda_count is None:
        cuda_count = paddle.device.cuda.device_count() if paddle.is_compiled_with_cuda() else 0
    detect = custom_types is None
    if detect:
        custom_types = paddle.device.get_all_custom_device_type() or []
    found = {"cpu": 1}
    if cuda_count:
        found["gpu"] = int(cuda_count)
    for t in custom_types:
        if isinstance(t, (tuple, list)):
            t, n = t
        elif detect:
            try:
                n = paddle.framework.core.get_custom_device_count(t)
            except Exception:  # counting is best effort; the type itself is registered
                n = 1
        else:
            n = 1
        found[str(t)] = max(int(n), 1)
    return found


def resolve_device(spec="auto", devices=None):
    """Turn a user's device string into a Paddle device string, checking that it exists."""
    devices = available_devices() if devices is None else devices
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if "gpu" in devices:
            return "gpu"
        custom = [t for t in devices if t not in ("cpu", "gpu")]
        return custom[0] if custom else "cpu"
    m = re.fullmatch(r"([a-z_][a-z0-9_]*)(?::(\d+))?", spec)
    if not m:
        raise DeviceError(f"invalid device {spec!r}: use auto, cpu, gpu[:id], npu[:id] or <custom>[:id]")
    kind, idx = m.group(1), m.group(2)
    kind = {"cuda": "gpu", "ascend": "npu"}.get(kind, kind)
    if kind not in devices:
        have = ", ".join(f"{k}" + (f" x{n}" if k != "cpu" else "") for k, n in devices.items())
        hint = INSTALL_HINTS.get(kind, f"install the Paddle plugin that registers the {kind!r} device type")
        raise DeviceError(f"device {spec!r} is not available in this Paddle build (available: {have}); to use it, "
                          f"{hint}")
    if kind == "cpu":
        return "cpu"
    if idx is not None and int(idx) >= devices[kind]:
        raise DeviceError(f"device {spec!r} does not exist: this machine has {devices[kind]} {kind} card(s)")
    return kind if idx is None else f"{kind}:{idx}"


def set_device(spec="auto"):
    """Resolve ``spec`` and make it Paddle's current device; returns the device string."""
    import paddle

    device = resolve_device(spec)
    paddle.set_device(device)
    return device


def device_type(device):
    """'gpu:1' -> 'gpu'."""
    return device.split(":", 1)[0]
