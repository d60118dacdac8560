"""The CPU training step as a static program with oneDNN kernels (``train.cpu_static``).

Paddle 3.3's dygraph runs convolutions and their gradients on the CPU as im2col + GEMM, whatever
``FLAGS_use_onednn`` says; its oneDNN kernels are reachable only from a static program.  ``StaticTrainStep``
traces the network and the loss together with ``paddle.jit.to_static`` (one program per input shape) and runs
Paddle's ``onednn_placement_pass`` on the forward and backward halves of that program while dy2static builds
them; the backward call and the optimizer stay in dygraph, and the parameters are the network's own (state-dict
keys, checkpoints, EMA and validation are unchanged).  Corrections the pass needs in Paddle 3.3.1:

- the OneDNN dialect is registered only once some program has been lowered to kernels, and until then the pass
  silently changes nothing: one tiny program is run first;
- the pass sets ``is_test=True``, which oneDNN's conv2d refuses in training: it is set back to False;
- ops whose oneDNN kernel fails in training go back to the CPU kernel: bilinear_interp and nearest_interp (an
  attribute type the kernel bridge cannot convert), add_n (the 0-D loss terms), concat_grad (dnnl errors) and
  conv2d_transpose (its oneDNN kernel is inference-only: it keeps the weights of its first call, so training
  would go on with stale weights);
- gradient ops that oneDNN runs with its slow reference code on these layouts (``ref:any`` in ONEDNN_VERBOSE:
  bias reductions, activation, pooling, softmax and broadcasting-multiply gradients) go back as well;
- choosing the kernels of mean at a program's first run prints a bare debug line per op on stdout: that first
  run is kept off file descriptor 1.

It hooks dy2static's private ``apply_general_passes``, so it is enabled on Paddle 3.3.x only.  Any failure while
building, tracing or running the program switches the run to the dygraph step with one warning line (the step
that failed is recomputed in dygraph).  Only the trainer on the CPU without AMP uses it (``cpu_static_plan``).
"""
import collections
import contextlib
import os
import re
import sys

import paddle

# ``auto``: the networks where the static step is verified (numerics, resume, two-process launch) and pays.
# MIRNet_v2 is left out (no gain over dygraph: docs/performance.md), MIMOUNetPlus (its dropout would draw
# its masks inside the program) and the DAE networks (batch normalisation) are not verified.
AUTO_NETWORKS = ("MIMOUNet",)
PADDLE_VERSIONS = r"3\.3\.\d+"  # the private hook it relies on is that of these releases
# onednn_op.* that are given back to the CPU kernel after the placement pass (see the module docstring)
CPU_KERNEL_OPS = ("bilinear_interp", "nearest_interp", "add_n", "concat_grad", "conv2d_transpose",
                  "add_grad", "relu_grad", "leaky_relu_grad", "multiply_grad", "pool2d_grad", "softmax_grad")
_ONEDNN_ONLY_ATTRS = {"mkldnn_data_type", "onednn_data_type", "use_quantizer", "scale_x", "scale_y", "scale_out",
                      "is_test", "force_fp32_output"}
KEEP_SHAPES = 2  # programs kept at once (a stage's micro-batch and its remainder); older ones are released

_state = {"installed": False, "active": False}


def cpu_static_plan(setting, network, device, amp, version=None):
    """Whether the trainer takes the static CPU step: ``(use, message)``; ``message`` is a line for the log when
    the setting asked for it and it cannot be used here (None otherwise).

    Only on the CPU (GPUs and NPUs keep their dygraph step), never under AMP, on Paddle 3.3.x; ``auto`` only for
    the networks in ``AUTO_NETWORKS``."""
    if device.split(":", 1)[0] != "cpu" or setting is False or (setting == "auto" and network not in AUTO_NETWORKS):
        return False, None
    if amp:
        return False, "train.cpu_static: AMP is on, so the training step runs in dygraph"
    version = paddle.__version__ if version is None else version
    if not re.fullmatch(PADDLE_VERSIONS, version):
        return False, (f"train.cpu_static: the static CPU step needs Paddle 3.3.x (this is {version}); "
                       f"training in dygraph")
    return True, None


def error_summary(exc):
    """The line of ``exc``'s text that says what went wrong: Paddle wraps errors in C++ and Python traces, frames
    and ``(at file:line)`` markers, so the last ``SomeError: ...`` or ``(Category) ...`` line, else the last line
    with words in it."""
    lines = [ln.strip() for ln in str(exc).splitlines()]
    lines = [re.sub(r"\s*\(at [^()]*\)$", "", ln) for ln in lines if not re.fullmatch(r"\(at [^()]*\)", ln)]
    wordy = [ln for ln in lines if re.search(r"[A-Za-z]{2}", ln) and not re.fullmatch(r"At:|.*\(\d+\): \S+", ln)
             and not re.search(r"={4}", ln)]
    named = [ln for ln in wordy if re.match(r"(\w+(Error|Exception|Exit)|\(\w+\)\s*\S)", ln)]
    return (named or wordy or [""])[-1]


def _cpu_kernel(program):
    """Rebuild the ``CPU_KERNEL_OPS`` among the onednn_op.* ops of ``program`` as pd_op.* (CPU kernel) ops."""
    from paddle import _pir_ops

    todo = [op for op in program.global_block().ops
            if op.name().startswith("onednn_op.") and op.name().split(".", 1)[1] in CPU_KERNEL_OPS]
    if not todo:
        return
    with paddle.static.program_guard(program):
        for op in todo:
            base, attrs, args = op.name().split(".", 1)[1], op.attrs(), []
            for v in op.operands_source():
                producer = v.get_defining_op() if v.initialized() else None
                if not v.initialized():
                    args.append(None)
                elif producer is not None and producer.name() == "builtin.combine":
                    args.append(producer.operands_source())
                else:
                    args.append(v)
            paddle.pir.set_insertion_point(op)
            if base == "multiply_grad":  # no _pir_ops builder: d(x * y) with broadcasting, written out
                outs = []
                for i, other in ((0, args[1]), (1, args[0])):
                    if not op.result(i).all_used_ops():
                        outs.append(None)
                        continue
                    g = paddle.multiply(args[2], other)
                    dims = [d for d, n in enumerate(args[i].shape) if n == 1 and g.shape[d] != 1]
                    outs.append(paddle.sum(g, axis=dims, keepdim=True) if dims else g)
            elif base == "conv2d_transpose":  # the builder takes output_size (an operand here) after 3 attributes
                outs = [_pir_ops.conv2d_transpose(args[0], args[1], attrs["strides"], attrs["paddings"],
                                                  attrs["output_padding"], args[2], attrs["padding_algorithm"],
                                                  attrs["groups"], attrs["dilations"], attrs["data_format"])]
            else:  # operands, then attributes, in the op's order
                outs = getattr(_pir_ops, base)(*args, *[attrs[k] for k in op.get_attr_names()
                                                        if k not in _ONEDNN_ONLY_ATTRS])
                outs = [outs] if op.num_results() == 1 else outs
            for i, new in enumerate(outs):
                old = op.result(i)
                if isinstance(new, (list, tuple)):  # a vector result: rewire the builtin.split that unpacked it
                    for user in old.all_used_ops():
                        for r_old, r_new in zip(user.results(), new):
                            r_old.replace_all_uses_with(r_new)
                        user.erase()
                elif new is not None:
                    if old.is_dense_tensor_type() and list(new.shape) != list(old.shape):
                        raise RuntimeError(f"{op.name()} rebuilt with shape {new.shape} instead of {old.shape}")
                    old.replace_all_uses_with(new)
            op.erase()
        paddle.pir.reset_insertion_point_to_end()


def _place_onednn(program):
    pm = paddle.pir.PassManager(2)
    pm.add_pass("onednn_placement_pass", {})
    pm.run(program)
    for op in program.global_block().ops:
        if op.name().startswith("onednn_op.") and op.has_attr("is_test"):
            op.set_bool_attr("is_test", False)
    _cpu_kernel(program)


def _install():
    """Wrap dy2static's pass hook once (it acts only inside ``_onednn_scope``) and register the OneDNN dialect."""
    if _state["installed"]:
        return
    import paddle.jit.dy2static.pir_partial_program as ppp

    general = ppp.apply_general_passes

    def apply_general_passes(program, *args, **kwargs):
        general(program, *args, **kwargs)
        if _state["active"]:
            _place_onednn(program)

    def _register_onednn_dialect(a):
        return a * 2.0

    ppp.apply_general_passes = apply_general_passes
    _state["installed"] = True
    paddle.jit.to_static(_register_onednn_dialect, full_graph=True)(paddle.ones([1]))


@contextlib.contextmanager
def _onednn_scope():
    _state["active"] = True
    try:
        yield
    finally:
        _state["active"] = False


@contextlib.contextmanager
def _quiet_stdout():
    """File descriptor 1 sent to /dev/null: the first run of a program selects its kernels, and Paddle 3.3.1's
    oneDNN check for mean prints a bare debug line ("ReduceMeanCheckIfOneDNNSupport") per mean op on stdout."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        sys.stdout.flush()
        libc.fflush(None)
        saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    except (OSError, AttributeError, ValueError):  # no C library to flush or no descriptor 1: print as it is
        yield
        return
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stdout.flush()
        libc.fflush(None)
        os.dup2(saved, 1)
        os.close(saved)


class _NetLoss(paddle.nn.Layer):
    def __init__(self, net, loss_fn):
        super().__init__()
        self.net, self.loss_fn = net, loss_fn

    def forward(self, inp, target):
        return self.loss_fn(self.net(inp), target)


class StaticTrainStep(paddle.nn.Layer):
    """``step(inp, target) -> loss`` of ``net`` and ``loss_fn``: a static program with oneDNN kernels while it
    works, the dygraph ``loss_fn(net(inp), target)`` after a failure (``disable``).

    Its parameters are ``net``'s, so ``paddle.DataParallel(step)`` averages ``net``'s gradients.  Each new input
    shape costs one trace (seconds); the programs of the last ``KEEP_SHAPES`` shapes are kept and older ones
    released with their memory (progressive stages come back to no shape)."""

    def __init__(self, net, loss_fn, warn):
        super().__init__()
        self.net, self.loss_fn = net, loss_fn
        self._warn, self._programs, self.active = warn, collections.OrderedDict(), True
        self._ran = set()  # programs run at least once (their first run is kept off stdout: _quiet_stdout)
        _install()

    def disable(self, exc):
        """Switch to the dygraph step for the rest of the run, with one warning line."""
        if self.active:
            self.active = False
            self._programs.clear()
            self._ran.clear()
            self._warn(f"train.cpu_static: the static CPU step failed ({type(exc).__name__}: "
                       f"{error_summary(exc)[:200]}); training in dygraph from here")

    def _program(self, inp, target):
        """The traced net + loss for the shapes of ``inp`` and ``target``, built (with the oneDNN passes) if new."""
        key = (tuple(inp.shape), tuple(target.shape))
        if key in self._programs:
            self._programs.move_to_end(key)
            return self._programs[key]
        layer = paddle.jit.to_static(_NetLoss(self.net, self.loss_fn), full_graph=True)
        with _onednn_scope():
            _, partial = layer.forward.get_concrete_program(inp, target)
            partial.train_program  # noqa: B018 -- builds the forward and backward programs now
        self._programs[key] = layer
        while len(self._programs) > KEEP_SHAPES:
            self._ran.discard(self._programs.popitem(last=False)[0])
        return layer

    def prepare(self, pairs):
        """Build the programs for these (inp, target) pairs before any of them adds to the gradients: Paddle 3.3
        resets the parameters' gradients whenever it builds a training program, which would drop those of the
        micro-batches already computed in this step."""
        if self.active:
            try:
                for inp, target in pairs:
                    self._program(inp, target)
            except Exception as exc:  # noqa: BLE001 -- any failure of the static path falls back to dygraph
                self.disable(exc)

    def forward(self, inp, target):
        if self.active:
            try:
                layer = self._program(inp, target)
                key = (tuple(inp.shape), tuple(target.shape))
                with _onednn_scope(), (_quiet_stdout() if key not in self._ran else contextlib.nullcontext()):
                    loss = layer(inp, target)
                self._ran.add(key)
                return loss
            except Exception as exc:  # noqa: BLE001 -- any failure of the static path falls back to dygraph
                self.disable(exc)
        return self.loss_fn(self.net(inp), target)
