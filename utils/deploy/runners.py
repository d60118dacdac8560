"""Runners: every way to run a restoration network, behind one call signature.

Every backend is a *runner*: a callable taking a float32 NCHW numpy batch of RGB images in [0, 1] (the
pipeline space) and returning the restored full-resolution batch in the same space.  ``PipelineModel`` wraps a
network so that this holds for every registered model (value range, channel order, multi-scale outputs); the
exported static graphs are that wrapper, so the runners for Paddle Inference and ONNX Runtime need no
model-specific code.

Paddle Inference configuration (Paddle 3.3.1, CPU), chosen from the files present in the model folder:
- ``inference.pdmodel`` (legacy program, export_model.py's default): oneDNN with memory optimisation, the
  fastest correct CPU path;
- ``inference.json`` (PIR program): oneDNN with ``conv_activation_onednn_fuse_pass`` and
  ``onednn_placement_pass`` deleted; the default PIR configuration crashes on Conv + LeakyReLU and on
  interpolation in 3.3.1, and ``enable_memory_optim`` raises on this format.
GPUs (optionally with TensorRT) and custom devices such as Ascend NPUs: accelerators.py.
"""
import os

import numpy as np
from paddle import nn

from networks import from_network_space, network_task, primary_output, task_of, to_network_space

from ..cli import add_task_argument, positive_int
from ..device import cpu_threads
from ..errors import UserError
from .accelerators import configure_accelerator, legacy_device, trt_on

META_FILE = "inference.yml"
ONNX_FILE = "inference.onnx"
PROGRAMS = {"pdmodel": "inference.pdmodel", "json": "inference.json"}
PARAMS_FILE = "inference.pdiparams"
ONEDNN_UNSAFE_PASSES = ("conv_activation_onednn_fuse_pass", "onednn_placement_pass")
CPU_PRECISIONS = ("fp32", "int8", "bf16")


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


def predictor_config(model_dir, device="cpu", threads=None, enable_mkldnn=True, precision="fp32", tensorrt=None):
    """A Paddle Inference ``Config`` for the exported model and a one-line description of what runs.
    GPUs and custom devices (and ``tensorrt``, a TensorRTOptions) are set up by accelerators.py."""
    from paddle import inference

    from ..device import resolve_device

    fmt, program, params = find_program(model_dir)
    device = resolve_device(device)
    kind, _, idx = device.partition(":")
    config = inference.Config(program, params)
    label = "legacy program" if fmt == "pdmodel" else "PIR program"
    where = f"{label} {os.path.basename(program)} on {device}"
    if kind != "cpu":
        what = f"{where}: " + configure_accelerator(config, kind, idx, precision, tensorrt, fmt, program,
                                                    int(read_meta(model_dir).get("size_multiple", 1)))
    elif trt_on(tensorrt):
        raise UserError("TensorRT runs on NVIDIA GPUs only: pass --device gpu, or drop --use-tensorrt")
    else:
        return config, cpu_config(config, model_dir, fmt, where, threads, enable_mkldnn, precision)
    if fmt == "pdmodel":  # keeps peak memory near PyTorch's; raises on the PIR format in 3.3.1
        config.enable_memory_optim()
    config.disable_glog_info()
    return config, what


def cpu_instructions():
    """(AVX512-BF16 or AMX-BF16 present, AVX512-VNNI or AMX-INT8 present), as Paddle's own checks see them."""
    from paddle.base import core

    return bool(core.supports_bfloat16()), bool(core.supports_vnni())


def cpu_config(config, model_dir, fmt, where, threads=None, enable_mkldnn=True, precision="fp32"):
    """Fill ``config`` for the CPU; returns the one-line description of the configuration.

    - fp32, legacy program: oneDNN + memory optimisation (the fast configuration);
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
    if precision != "fp32" and (fmt != "pdmodel" or not enable_mkldnn):
        raise UserError(f"--precision {precision} on cpu needs oneDNN and the legacy program (.pdmodel)")
    if precision == "bf16" and not cpu_instructions()[0]:
        raise UserError(f"--precision bf16 needs a CPU with AVX512-BF16 or AMX; this one ({cpu_name()}) has "
                        "neither, so oneDNN would emulate bfloat16 slower than fp32: use fp32 or int8")
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    if not enable_mkldnn:
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
    """Runner on an exported static graph with Paddle Inference."""

    def __init__(self, model_dir, device="cpu", threads=None, enable_mkldnn=True, precision="fp32", tensorrt=None):
        from paddle import inference

        self.config, what = predictor_config(model_dir, device, threads, enable_mkldnn, precision, tensorrt)
        self.shape_check = tensorrt.check if trt_on(tensorrt) else None
        self.description = f"Paddle Inference: {what}"
        try:
            self.predictor = inference.create_predictor(self.config)
        except Exception as exc:  # corrupt or foreign program files raise many types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"cannot load the inference model in {model_dir}: {first[:200]}") from None
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
        return self.output.copy_to_cpu()


def find_onnx(model_dir):
    path = model_dir if str(model_dir).endswith(".onnx") else os.path.join(model_dir, ONNX_FILE)
    if not os.path.isfile(path):
        raise UserError(f"no ONNX model at {path} (create it with export_model.py --onnx)")
    return path


class OnnxRunner:
    """Runner on the paddle2onnx model with ONNX Runtime."""

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


def make_runner(backend, model_dir, device="cpu", threads=None, enable_mkldnn=True, precision="fp32", tensorrt=None):
    if backend == "onnx":
        if precision != "fp32" or trt_on(tensorrt):
            raise UserError(f"the ONNX backend runs fp32 only, without TensorRT (asked: {precision}"
                            f"{', TensorRT' if trt_on(tensorrt) else ''})")
        return OnnxRunner(model_dir, device, threads)
    if backend == "paddle":
        return PaddleRunner(model_dir, device, threads, enable_mkldnn, precision, tensorrt)
    raise UserError(f"unknown backend {backend!r} (paddle or onnx)")


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
    g.add_argument("--backend", choices=("paddle", "onnx"), default="paddle",
                   help="engine for --model-dir (default: %(default)s)")
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
