"""Paddle Inference on GPUs and custom devices (Ascend NPU): the predictor settings beside the CPU ones.

``runners.predictor_config`` builds the ``paddle.inference.Config``; for every device but the CPU it
hands the device part to ``configure_accelerator`` here.  The decision is a pure function,
``accelerator_settings``, returning the Config calls to make, so it can be checked without the device.

- GPU: ``enable_use_gpu(memory pool MB, card, precision)``; fp16 runs through Paddle's mixed-precision
  inference pass.  ``--use-tensorrt`` adds the TensorRT subgraph engine in the chosen precision (fp32 or fp16)
  with a dynamic-shape profile, since the exported programs take any height and width: sides from the
  model's size multiple up to ``--trt-max-side``, tuned for the 512-pixel tiles.  TensorRT runs on the legacy
  ``.pdmodel`` export (the default); the PIR format's TensorRT path is a separate conversion step.
- custom device (``npu`` from paddle-custom-npu, or any other plugin): ``enable_custom_device(type, card,
  precision)``, fp32 or fp16.
- A device without an id uses card 0 here, or the card ``FLAGS_selected_<type>s`` names.
"""
import os

from ..errors import UserError

GPU_MEMORY_POOL_MB = 256      # initial pool; Paddle grows it on demand
TRT_WORKSPACE = 1 << 30       # bytes TensorRT may use for its tactics
TRT_MIN_SUBGRAPH = 3          # smallest op group handed to TensorRT
TRT_OPT_SIDE = 512            # the tile size: the shape TensorRT tunes its kernels for
TRT_MAX_SIDE = 2048


def trt_on(tensorrt):
    return tensorrt is not None and tensorrt.enable


class TensorRTOptions:
    """TensorRT on/off and the dynamic-shape profile (batch and image sides)."""

    def __init__(self, enable=False, max_side=TRT_MAX_SIDE, opt_side=TRT_OPT_SIDE, max_batch=1):
        self.enable = bool(enable)
        self.max_side, self.opt_side, self.max_batch = int(max_side), int(opt_side), int(max_batch)
        if self.enable and (self.max_side < 1 or self.max_batch < 1):
            raise UserError(f"--trt-max-side and the batch size must be positive, got {self.max_side} and "
                            f"{self.max_batch}")

    def shapes(self, input_name, multiple=1):
        """({name: min}, {name: max}, {name: opt}) NCHW shapes for ``set_trt_dynamic_shape_info``."""
        low = max(int(multiple), 1)
        opt = min(max(self.opt_side, low), self.max_side)
        return ({input_name: [1, 3, low, low]}, {input_name: [self.max_batch, 3, self.max_side, self.max_side]},
                {input_name: [1, 3, opt, opt]})

    def check(self, shape):
        """Refuse a batch outside the profile before TensorRT fails on it with a long message."""
        n, _, h, w = shape
        if n > self.max_batch or h > self.max_side or w > self.max_side:
            raise UserError(f"input of shape {tuple(shape)} exceeds the TensorRT profile (batch {self.max_batch}, "
                            f"sides up to {self.max_side}): raise --trt-max-side or tile the image (--tile 512)")


def card_index(kind, idx, env=None):
    """The card number for a device string's id: the explicit one, else the launcher's, else 0."""
    from ..device import launcher_card

    if idx not in (None, ""):
        return int(idx)
    assigned = launcher_card(kind, env)
    return 0 if assigned is None else assigned


def accelerator_settings(kind, idx, precision="fp32", tensorrt=None, fmt="pdmodel", input_name="x", multiple=1):
    """[(Config method name, args)] for a GPU or custom device, and a short description of what runs."""
    from paddle import inference

    precisions = {"fp32": inference.PrecisionType.Float32, "fp16": inference.PrecisionType.Half}
    if precision not in precisions:
        raise UserError(f"precision {precision} is not supported on {kind} (supported: fp32, fp16)")
    trt = tensorrt if trt_on(tensorrt) else None
    if kind == "cpu":
        raise ValueError("the CPU is configured in utils.deploy.runners.predictor_config")
    if trt and kind != "gpu":
        raise UserError(f"TensorRT runs on NVIDIA GPUs only, not on {kind}: drop --use-tensorrt")
    if trt and fmt != "pdmodel":
        raise UserError("TensorRT runs here on the legacy inference.pdmodel export: export the model again without "
                        "--format json (the default format)")
    if kind != "gpu":
        calls = [("enable_custom_device", (kind, idx, precisions[precision]))]
        return calls, f"custom device {kind}:{idx}, {precision}"
    if not trt:
        return ([("enable_use_gpu", (GPU_MEMORY_POOL_MB, idx, precisions[precision]))],
                f"GPU {idx}, {precision}" + (" (mixed-precision pass)" if precision == "fp16" else ""))
    calls = [("enable_use_gpu", (GPU_MEMORY_POOL_MB, idx, precisions["fp32"])),
             ("enable_tensorrt_engine", (TRT_WORKSPACE, trt.max_batch, TRT_MIN_SUBGRAPH, precisions[precision],
                                         False, False)),
             ("set_trt_dynamic_shape_info", trt.shapes(input_name, multiple))]
    return calls, f"GPU {idx}, TensorRT {precision}, sides up to {trt.max_side}"


def configure_accelerator(config, kind, idx, precision="fp32", tensorrt=None, fmt="pdmodel", program=None,
                          multiple=1):
    """Apply ``accelerator_settings`` to a ``paddle.inference.Config``; returns the description."""
    calls, what = accelerator_settings(kind, card_index(kind, idx), precision, tensorrt, fmt,
                                       program_input_name(program, fmt), multiple)
    for name, args in calls:
        getattr(config, name)(*args)
    return what


def program_input_name(program, fmt):
    """The feed name of a legacy program ('x' for export_model.py's exports; 'x' when it cannot be read)."""
    if not program or fmt != "pdmodel" or not os.path.isfile(program):
        return "x"
    try:
        from paddle.base.proto import framework_pb2

        desc = framework_pb2.ProgramDesc()
        with open(program, "rb") as f:
            desc.ParseFromString(f.read())
        feeds = [op.outputs[0].arguments[0] for op in desc.blocks[0].ops if op.type == "feed" and op.outputs]
    except Exception:  # protobuf decoding errors; find_program has already refused corrupt files
        feeds = []
    return feeds[0] if feeds else "x"


def add_device_arguments(parser):
    """infer.py's device flags: --device, the TIPC-style --use-gpu / --use-npu, --use-tensorrt, --trt-max-side."""
    from ..cli import str2bool

    parser.add_argument("--device", help="auto | cpu | gpu[:id] | npu[:id] | <custom>[:id] (default: auto)")
    parser.add_argument("--use-gpu", "--use_gpu", type=str2bool, default=None, help="True = gpu, False = cpu")
    parser.add_argument("--use-npu", "--use_npu", type=str2bool, default=None, help="True = npu, False = cpu")
    parser.add_argument("--use-tensorrt", "--use_tensorrt", type=str2bool, nargs="?", const=True, default=False,
                        help="TensorRT subgraphs on a GPU (legacy .pdmodel export), in --precision")
    parser.add_argument("--trt-max-side", "--trt_max_side", type=int, default=TRT_MAX_SIDE,
                        help="largest image side the TensorRT profile accepts (default: %(default)s)")
    return parser


def tensorrt_options(args):
    """TensorRTOptions from infer.py's arguments (the batch bound covers --batch-size and --tile-batch)."""
    batch = max(int(getattr(args, "batch_size", 1) or 1), int(getattr(args, "tile_batch", 1) or 1))
    return TensorRTOptions(args.use_tensorrt, args.trt_max_side, max_batch=batch)


def legacy_device(device=None, use_gpu=None, use_npu=None):
    """--device wins; else TIPC's --use-gpu / --use-npu True (that device) or False (cpu); else auto."""
    if device:
        return device
    if use_gpu and use_npu:
        raise UserError("--use-gpu True and --use-npu True contradict each other: pick one (or use --device)")
    if use_gpu:
        return "gpu"
    if use_npu:
        return "npu"
    return "cpu" if False in (use_gpu, use_npu) else "auto"
