"""Runners: every way to run a restoration network, behind one call signature.

Every backend is a *runner*: a callable taking a float32 NCHW numpy batch of RGB images in [0, 1] (the
pipeline space) and returning the restored full-resolution batch in the same space.  ``PipelineModel`` wraps a
network so that this holds for every registered model (value range, channel order, multi-scale outputs); the
exported static graphs are that wrapper, so the runners of the exported models need no model-specific code.

Engines for an exported model on the CPU (``make_runner``'s backends).  ``auto``, the default, takes the first of
``AUTO_ORDER`` that runs the model here, fastest first (docs/performance.md), and says in its description why
a faster one was skipped:

1. ``openvino``: OpenVINO (the ``openvino`` package) reading ``inference.pdmodel`` with its Paddle frontend, one
   dynamic-shape model, CPU pinning off;
2. ``paddle-openvino``: Paddle Inference's own OpenVINO engine (bundled with Paddle) on the same program, its
   outputs checked (a failed run of that engine returns the previous output instead of an error);
3. ``paddle``: Paddle Inference with oneDNN, configured from the files in the model folder:
   ``inference.pdmodel`` (legacy program): oneDNN with memory optimisation, which also runs exports made before
   the OpenVINO engines could read them (edge padding by ``pad3d``); ``inference.json`` (PIR program): oneDNN
   with ``conv_activation_onednn_fuse_pass`` and ``onednn_placement_pass`` deleted (the default PIR
   configuration crashes on Conv + LeakyReLU and on interpolation in 3.3.1; ``enable_memory_optim`` raises on
   this format).  INT8 models of tools/quantize.py and ``--enable-mkldnn False`` run here too.

``onnx`` (ONNX Runtime on ``inference.onnx``) runs only when asked for.  GPUs (optionally with TensorRT) and custom
devices such as Ascend NPUs: Paddle Inference, accelerators.py.
"""
import os

import numpy as np
from paddle import nn

from networks import from_network_space, network_task, primary_output, task_of, to_network_space

from ..cli import add_task_argument, positive_int
from ..device import cpu_threads, device_type
from ..errors import EngineError, UserError
from .accelerators import configure_accelerator, legacy_device, trt_on

META_FILE = "inference.yml"
ONNX_FILE = "inference.onnx"
PROGRAMS = {"pdmodel": "inference.pdmodel", "json": "inference.json"}
PARAMS_FILE = "inference.pdiparams"
ONEDNN_UNSAFE_PASSES = ("conv_activation_onednn_fuse_pass", "onednn_placement_pass")
CPU_PRECISIONS = ("fp32", "int8", "bf16")
BACKENDS = ("auto", "openvino", "paddle-openvino", "paddle", "onnx")
AUTO_ORDER = ("openvino", "paddle-openvino", "paddle")
ENGINE_NAMES = {"openvino": "OpenVINO", "paddle-openvino": "Paddle Inference's OpenVINO engine",
                "paddle": "Paddle Inference with oneDNN", "onnx": "ONNX Runtime"}


# ---------------------------------------------------------------------------------------------- models
class PipelineModel(nn.Layer):
    """``net`` seen from the pipeline: RGB [0, 1] NCHW in, full-resolution output in the same space out."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return from_network_space(primary_output(self.net(to_network_space(x, self.net))), self.net)


def pipeline_model(net):
    model = PipelineModel(net)
    model.eval()
    return model


class DygraphRunner:
    """Runner on a dygraph network (no gradients); ``context`` (a callable returning a context manager, e.g.
    the trainer's autocast) wraps every forward pass."""

    engine = "dygraph"

    def __init__(self, net, device=None, context=None):
        self.model = pipeline_model(net)
        self.model_name, self.device = type(net).__name__, device or "cpu"
        self.task = task_of(net)
        self.size_multiple = int(getattr(net, "size_multiple", 1))
        self.description = f"dygraph {type(net).__name__}" + (f" on {device}" if device else "")
        self.context = context

    def __call__(self, batch):
        import contextlib

        import paddle

        with paddle.no_grad(), (self.context() if self.context else contextlib.nullcontext()):
            out = self.model(paddle.to_tensor(np.ascontiguousarray(batch, dtype=np.float32)))
        return np.asarray(out.astype("float32").numpy() if out.dtype != paddle.float32 else out.numpy())


# ---------------------------------------------------------------------------------- exported models
def meta_task(meta):
    """The restoration task an export's metadata records (older exports: that of the network it names)."""
    if meta.get("task"):
        return meta["task"]
    network = meta.get("network")
    if isinstance(network, dict) and network.get("name"):
        try:
            return network_task(network)
        except UserError:
            return None
    return None


def read_meta(model_dir):
    """The metadata export_model.py writes beside the program (empty dict when it is absent; ConfigError, one
    line, when it is not a readable YAML mapping)."""
    from ..config import read_yaml

    path = os.path.join(model_dir, META_FILE)
    if not os.path.isfile(path):
        return {}
    return read_yaml(path, META_FILE)


def find_program(model_dir):
    """('pdmodel' | 'json', program path, params path) of the exported model in ``model_dir``."""
    if not os.path.isdir(model_dir):
        raise UserError(f"model directory not found: {model_dir} (create it with export_model.py)")
    params = os.path.join(model_dir, PARAMS_FILE)
    for fmt, name in PROGRAMS.items():
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            if not os.path.isfile(params) or os.path.getsize(params) == 0:
                raise UserError(f"{model_dir} has {name} but no (or an empty) {PARAMS_FILE}")
            _check_program(fmt, path)
            return fmt, path, params
    raise UserError(f"no exported model in {model_dir}: expected {' or '.join(PROGRAMS.values())} with "
                    f"{PARAMS_FILE} (create it with export_model.py)")


def _check_program(fmt, path):
    """Refuse a corrupt program file before Paddle Inference parses it (3.3.1 crashes on some)."""
    try:
        if fmt == "pdmodel":
            from paddle.base.proto import framework_pb2

            desc = framework_pb2.ProgramDesc()
            with open(path, "rb") as f:
                desc.ParseFromString(f.read())
            ok = len(desc.blocks) > 0 and len(desc.blocks[0].ops) > 0
        else:
            import json

            with open(path, encoding="utf-8") as f:
                ok = isinstance(json.load(f), dict)
    except Exception:  # protobuf / json decoding errors
        ok = False
    if not ok:
        raise UserError(f"{path} is not a valid exported program (corrupt or truncated); export it again")


def predictor_config(model_dir, device="cpu", threads=None, enable_mkldnn=True, precision="fp32", tensorrt=None,
                     openvino=False):
    """A Paddle Inference ``Config`` for the exported model and a one-line description of what runs.
    GPUs and custom devices (and ``tensorrt``, a TensorRTOptions) are set up by accelerators.py; ``openvino``: Paddle
    Inference's OpenVINO engine instead of oneDNN (CPU)."""
    from paddle import inference

    from ..device import resolve_device

    fmt, program, params = find_program(model_dir)
    device = resolve_device(device)
    kind, _, idx = device.partition(":")
    config = inference.Config(program, params)
    label = "legacy program" if fmt == "pdmodel" else "PIR program"
    where = f"{label} {os.path.basename(program)} on {device}"
    if kind != "cpu" and openvino:
        raise UserError(f"Paddle Inference's OpenVINO engine runs on the CPU (asked: {device}); pass --device cpu")
    if kind != "cpu":
        what = f"{where}: " + configure_accelerator(config, kind, idx, precision, tensorrt, fmt, program,
                                                    int(read_meta(model_dir).get("size_multiple", 1)))
    elif trt_on(tensorrt):
        raise UserError("TensorRT runs on NVIDIA GPUs only: pass --device gpu, or drop --use-tensorrt")
    else:
        return config, cpu_config(config, model_dir, fmt, where, threads, enable_mkldnn, precision, openvino)
    if fmt == "pdmodel":  # keeps peak memory near PyTorch's; raises on the PIR format in 3.3.1
        config.enable_memory_optim()
    config.disable_glog_info()
    return config, what


def cpu_instructions():
    """(AVX512-BF16 or AMX-BF16 present, AVX512-VNNI or AMX-INT8 present), as Paddle's own checks see them."""
    from paddle.base import core

    return bool(core.supports_bfloat16()), bool(core.supports_vnni())


def cpu_config(config, model_dir, fmt, where, threads=None, enable_mkldnn=True, precision="fp32", openvino=False):
    """Fill ``config`` for the CPU; returns the one-line description of the configuration.

    - ``openvino``: Paddle Inference's OpenVINO engine (fp32, legacy program only: on the PIR program Paddle
      3.3.1 ignores the setting and runs its default oneDNN passes, which crash on MIRNetV2);
    - fp32, legacy program: oneDNN + memory optimisation (the fast oneDNN configuration);
    - fp32, PIR program: oneDNN without the passes that crash or reject ops in Paddle 3.3.1 (the safe one);
    - int8: a model made by tools/quantize.py, oneDNN INT8 kernels;
    - bf16: oneDNN bfloat16 kernels, only on CPUs with AVX512-BF16 or AMX (refused elsewhere).
    """
    threads = int(threads or cpu_threads())
    quantised = read_meta(model_dir).get("precision", "fp32") == "int8"
    if precision not in CPU_PRECISIONS:
        raise UserError(f"precision {precision} is not supported on cpu (supported: {', '.join(CPU_PRECISIONS)})")
    if quantised != (precision == "int8"):
        raise UserError(f"{model_dir} holds an INT8 model: run it with --precision int8" if quantised else
                        f"--precision int8 needs a quantised model: make one from {model_dir} with tools/quantize.py")
    if openvino and precision != "fp32":
        raise UserError(f"Paddle Inference's OpenVINO engine runs fp32 here (asked: {precision}): use --backend paddle")
    if openvino and fmt != "pdmodel":
        raise EngineError("it reads the legacy program (inference.pdmodel) only, and this folder holds the PIR program")
    if openvino and not hasattr(config, "enable_openvino_engine"):
        raise EngineError("this Paddle build has no OpenVINO engine")
    if precision != "fp32" and (fmt != "pdmodel" or not enable_mkldnn):
        raise UserError(f"--precision {precision} on cpu needs oneDNN and the legacy program (.pdmodel)")
    if precision == "bf16" and not cpu_instructions()[0]:
        raise UserError(f"--precision bf16 needs a CPU with AVX512-BF16 or AMX; this one ({cpu_name()}) has "
                        "neither, so oneDNN would emulate bfloat16 slower than fp32: use fp32 or int8")
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    if openvino:
        from paddle import inference

        config.enable_openvino_engine(inference.PrecisionType.Float32)
        what = f"{where}, Paddle's bundled OpenVINO engine + memory optimisation, {threads} threads, fp32"
    elif not enable_mkldnn:
        config.disable_mkldnn()
        what = f"{where}, oneDNN off, {threads} threads (plain CPU kernels, slowest)"
    elif fmt == "pdmodel":
        config.enable_mkldnn()
        extra = {"int8": ", INT8 kernels", "bf16": ", bfloat16 kernels"}.get(precision, "")
        if precision == "int8":
            config.enable_mkldnn_int8()
        elif precision == "bf16":
            config.enable_mkldnn_bfloat16()
        what = (f"{where}, oneDNN{extra} + memory optimisation, {threads} threads (fast CPU configuration"
                f"{', ' + precision if precision != 'fp32' else ''})")
        if precision == "int8" and not cpu_instructions()[1]:
            what += (f"; warning: this CPU ({cpu_name()}) has no AVX512-VNNI / AMX-INT8, where oneDNN INT8 runs "
                     "many times slower than fp32 (fp32 is the fast choice here)")
    else:
        config.enable_mkldnn()
        for name in ONEDNN_UNSAFE_PASSES:
            config.delete_pass(name)
        what = (f"{where}, oneDNN without {' / '.join(ONEDNN_UNSAFE_PASSES)}, {threads} threads (safe PIR "
                "configuration; export the default .pdmodel format for the fast one)")
    if fmt == "pdmodel":  # keeps peak memory near PyTorch's; raises on the PIR format in 3.3.1
        config.enable_memory_optim()
    config.disable_glog_info()
    return what


def cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


class PaddleRunner:
    """Runner on an exported static graph with Paddle Inference (``openvino``: its OpenVINO engine)."""

    def __init__(self, model_dir, device="cpu", threads=None, enable_mkldnn=True, precision="fp32", tensorrt=None,
                 openvino=False):
        from paddle import inference

        self.config, what = predictor_config(model_dir, device, threads, enable_mkldnn, precision, tensorrt, openvino)
        self.shape_check = tensorrt.check if trt_on(tensorrt) else None
        self.engine, self.last_digests = "paddle-openvino" if openvino else "paddle", None
        self.description = f"Paddle Inference: {what}"
        cache = None
        if openvino:  # the engine writes its compiled model there (default: ./__cache__), needed only to create it
            import tempfile

            cache = tempfile.mkdtemp(prefix="paddle-openvino-")
            self.config.set_optim_cache_dir(cache)
        try:
            self.predictor = inference.create_predictor(self.config)
        except Exception as exc:  # corrupt or foreign program files raise many types
            if openvino:
                raise EngineError(conversion_failure(find_program(model_dir)[1], exc)) from None
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"cannot load the inference model in {model_dir}: {first[:200]}") from None
        finally:
            if cache:
                import shutil

                shutil.rmtree(cache, ignore_errors=True)
        self.model_name, self.device = read_meta(model_dir).get("model_name", "model"), device
        self.task = meta_task(read_meta(model_dir))
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])
        self.size_multiple = int(read_meta(model_dir).get("size_multiple", 1))

    def __call__(self, batch):
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self.shape_check:
            self.shape_check(batch.shape)
        self.input.reshape(list(batch.shape))
        self.input.copy_from_cpu(batch)
        self.predictor.run()
        out = self.output.copy_to_cpu()
        if self.engine == "paddle-openvino":
            self.check_fresh(batch, out)
        return out

    def check_fresh(self, batch, out):
        """Paddle Inference's OpenVINO engine only logs a failed run and leaves the previous output in place
        (Paddle 3.3.1): refuse an output whose shape is not the input's, or the previous output returned again
        for another input (compared by digests, so no copy is kept)."""
        import hashlib

        digests = (hashlib.blake2b(batch).digest(), hashlib.blake2b(np.ascontiguousarray(out)).digest())
        last, self.last_digests = self.last_digests, digests
        if out.shape != batch.shape or (last and digests[1] == last[1] and digests[0] != last[0]):
            self.last_digests = None
            got = "an output of shape " + " x ".join(map(str, out.shape)) if out.shape != batch.shape else \
                "the previous output again"
            raise EngineError(f"Paddle Inference's OpenVINO engine failed on a {' x '.join(map(str, batch.shape))} "
                              f"input (it returned {got}): run it with --backend openvino or paddle")


def find_onnx(model_dir):
    path = model_dir if str(model_dir).endswith(".onnx") else os.path.join(model_dir, ONNX_FILE)
    if not os.path.isfile(path):
        raise UserError(f"no ONNX model at {path} (create it with export_model.py --onnx)")
    return path


class OnnxRunner:
    """Runner on the paddle2onnx model with ONNX Runtime."""

    engine = "onnx"

    def __init__(self, model_dir, device="cpu", threads=None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("the ONNX backend needs onnxruntime: pip install onnxruntime") from None
        path = find_onnx(model_dir)
        kind, _, idx = device.partition(":")
        providers = {"cpu": ["CPUExecutionProvider"],
                     "gpu": [("CUDAExecutionProvider", {"device_id": int(idx or 0)}), "CPUExecutionProvider"]}.get(kind)
        first = providers and (providers[0][0] if isinstance(providers[0], tuple) else providers[0])
        if providers is None or first not in ort.get_available_providers():
            raise UserError(f"ONNX Runtime has no provider for device {device!r} here "
                            f"(available: {', '.join(ort.get_available_providers())})")
        opts = ort.SessionOptions()
        threads = int(threads or cpu_threads())
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        try:
            self.session = ort.InferenceSession(path, opts, providers=providers)
        except Exception as exc:
            raise UserError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0][:200]}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.description = f"ONNX Runtime {ort.__version__}: {os.path.basename(path)} on {device}, {threads} threads"
        self.config = {"runtime_device": kind, "ir_optim": True, "enable_tensorrt": False, "precision": "fp32",
                       "enable_mkldnn": False, "cpu_math_library_num_threads": threads}
        meta = read_meta(model_dir if os.path.isdir(model_dir) else os.path.dirname(path))
        self.size_multiple, self.model_name = int(meta.get("size_multiple", 1)), meta.get("model_name", "model")
        self.device, self.task = device, meta_task(meta)

    def __call__(self, batch):
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]


# ------------------------------------------------------------------------------------------ OpenVINO
# LATENCY: one stream, every thread on the one request.  CPU pinning off: a pinned thread cannot move away from a
# core that another process keeps busy (faster on a loaded machine, no slower on an idle one: docs/performance.md)
OV_PROPERTIES = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False}
OV_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


def openvino_module():
    """The ``openvino`` package, or None when it is not installed (or does not load)."""
    try:
        import openvino

        openvino.Core  # noqa: B018  (a partial install fails here)
    except Exception:  # ImportError, a missing shared library
        return None
    return openvino


def openvino_capabilities(core):
    """OpenVINO's optimisation capabilities of this CPU, e.g. FP32, INT8, BIN (BF16 only with AVX512-BF16 or AMX)."""
    return [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def pre_openvino_ops(program):
    """The ops of a legacy program that no OpenVINO engine converts and that exports made before OpenVINO support
    hold: ``pad3d`` with run-time paddings (the edge padding to a size multiple) and ``unbind``."""
    from paddle.base.proto import framework_pb2

    desc = framework_pb2.ProgramDesc()
    with open(program, "rb") as f:
        desc.ParseFromString(f.read())
    return sorted({op.type for block in desc.blocks for op in block.ops if op.type == "unbind" or (
        op.type == "pad3d" and any(v.parameter == "Paddings" and v.arguments for v in op.inputs))})


def conversion_failure(program, exc):
    """Why an OpenVINO engine could not read ``program`` (``exc``: what it raised), in one line."""
    ops = pre_openvino_ops(program) if program.endswith(".pdmodel") else []
    if ops:
        return (f"this export predates OpenVINO support (its {' / '.join(ops)} ops do not convert): export it again "
                "with export_model.py")
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"cannot convert {os.path.basename(program)}: {(lines[-1] if lines else type(exc).__name__)[:200]}"


class OpenVinoRunner:
    """Runner on the exported legacy program with OpenVINO (the ``openvino`` package): its Paddle frontend reads
    ``inference.pdmodel`` itself (no conversion step, no extra file) into one dynamic-shape model for the CPU.

    ``onnx_fallback``: when the program does not convert (an export made before OpenVINO support), read the
    folder's ``inference.onnx`` instead, if it has one (``--backend openvino``; ``auto`` prefers Paddle Inference
    then: OpenVINO needs about 1 GB more on the ONNX graph of MIRNetV2 at 1024 x 1024).
    """

    engine = "openvino"

    def __init__(self, model_dir, device="cpu", threads=None, precision="fp32", onnx_fallback=True):
        ov = openvino_module()
        if ov is None:
            raise EngineError("not installed (pip install openvino)")
        if device_type(device) != "cpu":
            raise UserError(f"the openvino backend runs on the CPU (asked: {device}); pass --device cpu")
        if precision not in OV_PRECISIONS:
            raise UserError(f"the openvino backend runs fp32, or bf16 on CPUs with AVX512-BF16 or AMX (asked: "
                            f"{precision})")
        meta = read_meta(model_dir)
        if meta.get("precision") == "int8":
            raise UserError(f"{model_dir} holds an INT8 model of tools/quantize.py: run it with --backend paddle "
                            "--precision int8")
        fmt, program, _ = find_program(model_dir)
        core = ov.Core()
        caps = openvino_capabilities(core)
        if precision == "bf16" and "BF16" not in caps:
            raise UserError(f"--precision bf16 needs a CPU with AVX512-BF16 or AMX; OpenVINO reports only "
                            f"{', '.join(caps)} for this one ({cpu_name()}) and would silently run fp32: use fp32")
        threads = int(threads or cpu_threads())
        props = dict(OV_PROPERTIES, INFERENCE_NUM_THREADS=threads, INFERENCE_PRECISION_HINT=OV_PRECISIONS[precision])
        onnx = os.path.join(model_dir, ONNX_FILE)
        sources = [program] if fmt == "pdmodel" else []
        sources += [onnx] if onnx_fallback and os.path.isfile(onnx) else []
        failures = [] if fmt == "pdmodel" else [
            "it reads the legacy program (inference.pdmodel), and this folder holds the PIR program: export with "
            "--format pdmodel"]
        for path in sources:
            try:
                self.compiled = core.compile_model(core.read_model(path), "CPU", props)
                break
            except Exception as exc:  # conversion failures raise RuntimeError subclasses (OpConversionFailure)
                failures.append(conversion_failure(path, exc))
        else:
            raise EngineError("; ".join(failures))
        self.request = self.compiled.create_infer_request()
        self.model_name, self.device, self.task = meta.get("model_name", "model"), "cpu", meta_task(meta)
        self.size_multiple = int(meta.get("size_multiple", 1))
        frontend = "Paddle frontend" if path.endswith(".pdmodel") else "ONNX frontend"
        self.description = (f"OpenVINO {ov.__version__.split('-')[0]}: {os.path.basename(path)} ({frontend}) on cpu, "
                            f"dynamic shape, {precision}, {threads} threads, CPU pinning off"
                            + (f" ({failures[0]})" if failures else ""))
        self.config = {"runtime_device": "cpu", "ir_optim": True, "enable_tensorrt": False, "precision": precision,
                       "enable_mkldnn": False, "cpu_math_library_num_threads": threads}

    def __call__(self, batch):
        return self.request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)}, share_inputs=True)[0]


# --------------------------------------------------------------------------------------- the choice
def make_runner(backend, model_dir, device="cpu", threads=None, enable_mkldnn=True, precision="fp32", tensorrt=None):
    """The runner of ``backend`` (one of ``BACKENDS``) on the exported model in ``model_dir``; ``auto``: the fastest
    engine that runs it here (``auto_runner``)."""
    if backend == "auto":
        return auto_runner(model_dir, device, threads, enable_mkldnn, precision, tensorrt)
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend != "paddle" and (precision not in ("fp32", "bf16") or trt_on(tensorrt)):
        raise UserError(f"the {backend} backend runs fp32{' or bf16' if backend == 'openvino' else ''} without "
                        f"TensorRT (asked: {precision}{', TensorRT' if trt_on(tensorrt) else ''}): use --backend "
                        "paddle")
    try:
        return _engine(backend, model_dir, device, threads, enable_mkldnn, precision, tensorrt)
    except EngineError as exc:
        raise EngineError(f"--backend {backend} cannot run here: {ENGINE_NAMES[backend]}: {exc}") from None


def _engine(name, model_dir, device, threads, enable_mkldnn, precision, tensorrt, onnx_fallback=True):
    if name == "onnx":
        if precision != "fp32":
            raise UserError(f"the ONNX backend runs fp32 only (asked: {precision})")
        return OnnxRunner(model_dir, device, threads)
    if name == "openvino":
        return OpenVinoRunner(model_dir, device, threads, precision, onnx_fallback)
    return PaddleRunner(model_dir, device, threads, enable_mkldnn, precision, tensorrt, name == "paddle-openvino")


def auto_order(model_dir, device="cpu", enable_mkldnn=True, precision="fp32", tensorrt=None):
    """(engines ``auto`` tries, in order; why the others are left out): ``AUTO_ORDER`` on the CPU in fp32."""
    fmt, _, _ = find_program(model_dir)
    meta = read_meta(model_dir)
    checked = meta.get("openvino") if isinstance(meta.get("openvino"), dict) else {}
    if device_type(device) != "cpu" or trt_on(tensorrt):
        return ("paddle",), []  # the OpenVINO engines run on the CPU here
    if precision not in CPU_PRECISIONS:
        raise UserError(f"precision {precision} is not supported on cpu (supported: {', '.join(CPU_PRECISIONS)})")
    if not enable_mkldnn:
        return ("paddle",), ["--enable-mkldnn False asks for Paddle Inference's plain CPU kernels"]
    if precision == "int8" or meta.get("precision") == "int8":
        return ("paddle",), ["INT8 models of tools/quantize.py run under Paddle Inference"]
    if fmt != "pdmodel":
        return ("paddle",), ["the OpenVINO engines read the legacy program only (export with --format pdmodel)"]
    if checked.get("error"):
        return ("paddle",), [f"the OpenVINO engines are left out: export_model.py found that {checked['error']}"]
    return (AUTO_ORDER if precision == "fp32" else ("openvino", "paddle")), []


def auto_runner(model_dir, device="cpu", threads=None, enable_mkldnn=True, precision="fp32", tensorrt=None):
    """The first engine of ``auto_order`` that loads the model; its description (one line) ends with why the
    faster engines were skipped.  Only ``EngineError`` (not installed, does not convert) moves on; a request
    this CPU cannot serve (bf16 without AVX512-BF16 / AMX, ...) is refused as it would be when forced."""
    order, notes = auto_order(model_dir, device, enable_mkldnn, precision, tensorrt)
    skipped = {}  # reason -> the engines skipped for it, in order
    for name in order:
        try:
            runner = _engine(name, model_dir, device, threads, enable_mkldnn, precision, tensorrt, onnx_fallback=False)
        except EngineError as exc:
            skipped.setdefault(str(exc), []).append(ENGINE_NAMES[name])
            continue
        notes += [f"skipped {' and '.join(names)}: {why}" for why, names in skipped.items()]
        why = "; ".join(notes) if notes else ("the fastest engine" if name == AUTO_ORDER[0] else "")
        runner.description += f" [--backend auto: {why}]" if why else ""
        return runner
    raise EngineError("no engine can run this model here: " + "; ".join(
        notes + [f"{' and '.join(names)}: {why}" for why, names in skipped.items()]))


TASK_NAMES = {"denoising": "a denoising network", "deblurring": "a deblurring network",
              "dmsp_prior": "a DMSP prior (a DAE: restore with restore_dmsp.py or infer.py --dmsp-task)"}
TASK_LABELS = {"denoising": "denoising", "deblurring": "deblurring", "dmsp_prior": "DMSP-prior (DAE)"}


def check_task(runner, allowed, script, any_task=False):
    """Refuse a network made for another task than ``script``'s (``allowed``: tasks it runs) unless ``any_task``
    (--any-task).  Networks that do not record a task pass."""
    task = getattr(runner, "task", None)
    if any_task or task is None or task in allowed:
        return
    wanted = " or ".join(TASK_LABELS.get(t, t) for t in allowed)
    raise UserError(f"{getattr(runner, 'model_name', 'the model')} is {TASK_NAMES.get(task, task)}, but {script} runs "
                    f"{wanted} networks; pass the right weights, or --any-task to run it anyway")


def add_model_arguments(parser):
    """The evaluation scripts' model: a checkpoint (--weights, dygraph) or an exported model (--model-dir)."""
    g = parser.add_argument_group("model: a checkpoint (--weights) or an exported model (--model-dir)")
    which = g.add_mutually_exclusive_group(required=True)
    which.add_argument("--weights", "--model_ckpt", dest="weights",
                       help="weights file (.pdparams) or training output folder, run in dygraph")
    which.add_argument("--model-dir", "--model_dir", dest="model_dir",
                       help="exported model folder (export_model.py), run by --backend")
    g.add_argument("-c", "--config", help="training config of the weights (when no config.yml is beside them)")
    g.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="engine for --model-dir (default: %(default)s, the fastest installed)")
    g.add_argument("--cpu-threads", "--cpu_threads", type=positive_int, default=None,
                   help="CPU threads (default: all)")
    add_task_argument(parser)
    return parser


def open_runner(args):
    """The runner of ``add_model_arguments``' arguments (and ``--device``), on the device it names."""
    if args.weights:
        from ..checkpoint import build_from_weights
        from ..device import set_device

        device = set_device(args.device)
        return DygraphRunner(build_from_weights(args.weights, args.config)[0], device)
    if args.config:
        raise UserError("-c/--config goes with --weights; an exported model carries its own configuration")
    return make_runner(args.backend, args.model_dir, infer_device(args.device), args.cpu_threads)


def infer_device(device=None, use_gpu=None, use_npu=None):
    """--device wins; else TIPC's --use-gpu / --use-npu True/False; else auto.  Checked against this Paddle build."""
    from ..device import resolve_device

    return resolve_device(legacy_device(device, use_gpu, use_npu))
