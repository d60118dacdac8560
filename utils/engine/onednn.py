"""oneDNN kernels for the dygraph training step on the CPU.

Paddle 3.3.1's dygraph CPU kernels are slow where training spends its time: convolutions and their gradients
are im2col + GEMM, and broadcasting products, bilinear/nearest resizes, poolings and activations run on one
thread.  The oneDNN library that the same wheel ships (``paddle/libs/libdnnl.so.3``, used by Paddle only in
static programs) has multi-threaded JIT kernels for all of them.  This module calls it through its C API
(ctypes: nothing to compile) and wires each kernel into autograd with a ``PyLayer``:

* ``install(net)`` routes ``net``'s float32 CPU dygraph calls of ``nn.Conv2D`` (NCHW, explicit zero padding),
  ``nn.Conv2DTranspose`` (groups 1), ``nn.ReLU`` / ``nn.LeakyReLU``, ``nn.AvgPool2D`` (no padding) and
  ``nn.Upsample`` (x2, nearest or bilinear without corner alignment) through oneDNN, and puts oneDNN behind the
  networks' element-wise steps (``networks.common.OPS``: broadcasting products and sums, spatial means, x2
  resizes, every second pixel, concatenations).  Parameters, keys and
  values are unchanged; any other dtype, place or layout, and every static program (exports, ``to_static``),
  takes Paddle's own operator call by call, so AMP, GPUs and NPUs are untouched.  ``remove(net)`` undoes it.
* ``available()`` says whether the library loads and a self-check (forward and both gradients against
  Paddle's own kernels on small grouped, strided and dilated convolutions) passes; cached per process.
* ``onednn_plan`` is the trainer's decision (``train.onednn_ops``): the CPU without AMP only.

Convolutions: tensors stay plain NCHW / OIHW for Paddle; each call reorders them into the blocked formats that
oneDNN's kernels choose (and back), as PyTorch's oneDNN path does.  The blocked copies live in a few scratch
buffers shared by every convolution (calls run one after another), so the extra memory is a few activations.
The other kernels work on the plain tensors directly.
"""

import contextlib
import ctypes
import os
import threading

import numpy as np

# ---- oneDNN C API constants (oneDNN 3.x ABI) ----------------------------------------------------------------
_CPU = 1
_F32 = 3
_TAG_ANY, _TAG_A, _TAG_ABCD, _TAG_ABCDE = 1, 2, 5, 6
_FORWARD_TRAINING = 64
_CONV_DIRECT = 0x1
_Q_IMPL_INFO = 8
_Q_SRC, _Q_DIFF_SRC, _Q_WEIGHTS, _Q_DIFF_WEIGHTS, _Q_DST, _Q_DIFF_DST = 129, 130, 131, 132, 133, 134
_ARG_SRC, _ARG_DST, _ARG_WEIGHTS, _ARG_BIAS = 1, 17, 33, 41
_ARG_DIFF_SRC, _ARG_DIFF_DST, _ARG_DIFF_WEIGHTS, _ARG_DIFF_BIAS = 129, 145, 161, 169
_ARG_MULTIPLE_SRC = 1024
_Dims = ctypes.c_int64 * 12
_ELTWISE_RELU = 0x20
_POOL_AVG_EXCLUDE = 0x3FF
_BINARY_ADD, _BINARY_MUL = 0x1FFF0, 0x1FFF1
_RESAMPLE_NEAREST, _RESAMPLE_LINEAR = 0x2FFF0, 0x2FFF1
_REDUCE_SUM, _REDUCE_MEAN = 0x2FFF4, 0x2FFF6


class _ExecArg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", ctypes.c_void_p)]


class OneDNNError(RuntimeError):
    pass


# ---- library -------------------------------------------------------------------------------------------------

class _Library:
    """The wheel's libdnnl, its CPU engine and one in-order stream."""

    def __init__(self):
        import paddle

        path = os.path.join(os.path.dirname(paddle.__file__), "libs", "libdnnl.so.3")
        if not os.path.isfile(path):
            raise OneDNNError(f"this Paddle wheel ships no oneDNN library ({path})")
        lib = self.lib = ctypes.CDLL(path)
        vp = ctypes.c_void_p
        for name, args in {
            "dnnl_engine_create": [ctypes.POINTER(vp), ctypes.c_int, ctypes.c_size_t],
            "dnnl_stream_create": [ctypes.POINTER(vp), vp, ctypes.c_uint],
            "dnnl_stream_wait": [vp],
            "dnnl_memory_desc_create_with_tag": [ctypes.POINTER(vp), ctypes.c_int, _Dims, ctypes.c_int, ctypes.c_int],
            "dnnl_memory_desc_create_with_strides": [ctypes.POINTER(vp), ctypes.c_int, _Dims, ctypes.c_int, _Dims],
            "dnnl_memory_desc_clone": [ctypes.POINTER(vp), vp],
            "dnnl_convolution_forward_primitive_desc_create": [ctypes.POINTER(vp), vp, ctypes.c_int, ctypes.c_int,
                                                               vp, vp, vp, vp, _Dims, _Dims, _Dims, _Dims, vp],
            "dnnl_convolution_backward_data_primitive_desc_create": [ctypes.POINTER(vp), vp, ctypes.c_int,
                                                                     vp, vp, vp, _Dims, _Dims, _Dims, _Dims, vp, vp],
            "dnnl_convolution_backward_weights_primitive_desc_create": [ctypes.POINTER(vp), vp, ctypes.c_int,
                                                                        vp, vp, vp, vp, _Dims, _Dims, _Dims, _Dims,
                                                                        vp, vp],
            "dnnl_reorder_primitive_desc_create": [ctypes.POINTER(vp), vp, vp, vp, vp, vp],
            "dnnl_binary_primitive_desc_create": [ctypes.POINTER(vp), vp, ctypes.c_int, vp, vp, vp, vp],
            "dnnl_eltwise_forward_primitive_desc_create": [ctypes.POINTER(vp), vp, ctypes.c_int, ctypes.c_int, vp,
                                                           vp, ctypes.c_float, ctypes.c_float, vp],
            "dnnl_eltwise_backward_primitive_desc_create": [ctypes.POINTER(vp), vp, ctypes.c_int, vp, vp, vp,
                                                            ctypes.c_float, ctypes.c_float, vp, vp],
            "dnnl_pooling_forward_primitive_desc_create": [ctypes.POINTER(vp), vp, ctypes.c_int, ctypes.c_int, vp,
                                                           vp, _Dims, _Dims, _Dims, _Dims, _Dims, vp],
            "dnnl_pooling_backward_primitive_desc_create": [ctypes.POINTER(vp), vp, ctypes.c_int, vp, vp, _Dims,
                                                            _Dims, _Dims, _Dims, _Dims, vp, vp],
            "dnnl_resampling_forward_primitive_desc_create": [ctypes.POINTER(vp), vp, ctypes.c_int, ctypes.c_int,
                                                              vp, vp, vp, vp],
            "dnnl_concat_primitive_desc_create": [ctypes.POINTER(vp), vp, vp, ctypes.c_int, ctypes.c_int,
                                                  ctypes.POINTER(vp), vp],
            "dnnl_memory_desc_create_submemory": [ctypes.POINTER(vp), vp, _Dims, _Dims],
            "dnnl_reduction_primitive_desc_create": [ctypes.POINTER(vp), vp, ctypes.c_int, vp, vp, ctypes.c_float,
                                                     ctypes.c_float, vp],
            "dnnl_primitive_desc_query": [vp, ctypes.c_int, ctypes.c_int, vp],
            "dnnl_primitive_create": [ctypes.POINTER(vp), vp],
            "dnnl_primitive_execute": [vp, vp, ctypes.c_int, ctypes.POINTER(_ExecArg)],
            "dnnl_memory_create": [ctypes.POINTER(vp), vp, vp, vp],
            "dnnl_memory_set_data_handle": [vp, vp],
            "dnnl_post_ops_create": [ctypes.POINTER(vp)],
            "dnnl_post_ops_append_eltwise": [vp, ctypes.c_int, ctypes.c_float, ctypes.c_float],
            "dnnl_primitive_attr_create": [ctypes.POINTER(vp)],
            "dnnl_primitive_attr_set_post_ops": [vp, vp],
        }.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, ctypes.c_int
        for name, args, res in (("dnnl_primitive_desc_query_md", [vp, ctypes.c_int, ctypes.c_int], vp),
                                ("dnnl_memory_desc_get_size", [vp], ctypes.c_size_t),
                                ("dnnl_memory_desc_equal", [vp, vp], ctypes.c_int)):
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, res
        self.engine, self.stream = vp(), vp()
        self.check(lib.dnnl_engine_create(ctypes.byref(self.engine), _CPU, 0), "engine")
        self.check(lib.dnnl_stream_create(ctypes.byref(self.stream), self.engine, 1), "stream")

    @staticmethod
    def check(status, what):
        if status != 0:
            raise OneDNNError(f"oneDNN {what} failed (status {status})")

    def md(self, dims, tag):
        out = ctypes.c_void_p()
        self.check(self.lib.dnnl_memory_desc_create_with_tag(ctypes.byref(out), len(dims), _dims(dims), _F32, tag),
                   "memory descriptor")
        return out

    def query_md(self, pd, what):
        md = self.lib.dnnl_primitive_desc_query_md(pd, what, 0)
        out = ctypes.c_void_p()
        self.check(self.lib.dnnl_memory_desc_clone(ctypes.byref(out), md), "memory descriptor clone")
        return out

    def impl(self, pd):
        name = ctypes.c_char_p()
        self.check(self.lib.dnnl_primitive_desc_query(pd, _Q_IMPL_INFO, 0, ctypes.byref(name)), "query")
        return name.value.decode()

    def primitive(self, pd):
        out = ctypes.c_void_p()
        self.check(self.lib.dnnl_primitive_create(ctypes.byref(out), pd), "primitive")
        return out

    def memory(self, md):
        out = ctypes.c_void_p()
        self.check(self.lib.dnnl_memory_create(ctypes.byref(out), md, self.engine, None), "memory")
        return out

    def size(self, md):
        return self.lib.dnnl_memory_desc_get_size(md)

    def same(self, a, b):
        return bool(self.lib.dnnl_memory_desc_equal(a, b))

    def relu_attr(self, alpha):
        """A primitive attribute whose post-op is a (leaky, ``alpha``) ReLU of the result."""
        ops, attr = ctypes.c_void_p(), ctypes.c_void_p()
        self.check(self.lib.dnnl_post_ops_create(ctypes.byref(ops)), "post-ops")
        self.check(self.lib.dnnl_post_ops_append_eltwise(ops, _ELTWISE_RELU, float(alpha), 0.0), "eltwise post-op")
        self.check(self.lib.dnnl_primitive_attr_create(ctypes.byref(attr)), "primitive attribute")
        self.check(self.lib.dnnl_primitive_attr_set_post_ops(attr, ops), "post-ops attribute")
        return attr

    def reorder_pd(self, src_md, dst_md):
        pd = ctypes.c_void_p()
        self.check(self.lib.dnnl_reorder_primitive_desc_create(ctypes.byref(pd), src_md, self.engine, dst_md,
                                                                self.engine, None), "reorder")
        return pd

    def reorder(self, src_md, dst_md):
        return self.primitive(self.reorder_pd(src_md, dst_md))

    def run(self, prim, args):
        """Execute ``prim`` with ``args`` = [(arg id, memory object, data pointer)]."""
        arr = (_ExecArg * len(args))()
        for i, (arg, mem, ptr) in enumerate(args):
            self.check(self.lib.dnnl_memory_set_data_handle(mem, ptr), "set data handle")
            arr[i].arg, arr[i].memory = arg, mem
        self.check(self.lib.dnnl_primitive_execute(prim, self.stream, len(args), arr), "execute")
        self.check(self.lib.dnnl_stream_wait(self.stream), "stream wait")


def _dims(values):
    d = _Dims()
    for i, v in enumerate(values):
        d[i] = int(v)
    return d


_LIB = None
_LIB_LOCK = threading.Lock()
_STATE = {}  # "ok": bool, "reason": str (available())


def _library():
    global _LIB
    with _LIB_LOCK:
        if _LIB is None:
            _LIB = _Library()
    return _LIB


# ---- scratch buffers -----------------------------------------------------------------------------------------

class _Scratch:
    """Named float32 buffers (Paddle tensors) grown to the largest size asked for; one set per process."""

    def __init__(self):
        self._buffers = {}

    def get(self, name, nbytes):
        import paddle

        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] * 4 < nbytes:
            buf = self._buffers[name] = paddle.empty([max(1, (nbytes + 3) // 4)], dtype="float32")
        return buf.data_ptr()


_SCRATCH = _Scratch()


# ---- one convolution shape -----------------------------------------------------------------------------------

class _Operand:
    """A tensor as Paddle holds it (plain) and as a oneDNN primitive wants it (maybe blocked)."""

    def __init__(self, lib, user_md, op_md, scratch_name, to_op):
        self.lib, self.user_md, self.op_md, self.name = lib, user_md, op_md, scratch_name
        self.user_mem, self.op_mem = lib.memory(user_md), lib.memory(op_md)
        self.plain = lib.same(user_md, op_md)
        self.nbytes = lib.size(op_md)
        self.reorder = None if self.plain else (lib.reorder(user_md, op_md) if to_op else lib.reorder(op_md, user_md))

    def into_op(self, ptr):
        """Pointer of the operand in the primitive's format (reordered into scratch when needed)."""
        if self.plain:
            return ptr
        dst = _SCRATCH.get(self.name, self.nbytes)
        self.lib.run(self.reorder, [(_ARG_SRC, self.user_mem, ptr), (_ARG_DST, self.op_mem, dst)])
        return dst

    def out_ptr(self, ptr):
        return ptr if self.plain else _SCRATCH.get(self.name, self.nbytes)

    def back_to_user(self, op_ptr, ptr):
        if not self.plain:
            self.lib.run(self.reorder, [(_ARG_SRC, self.op_mem, op_ptr), (_ARG_DST, self.user_mem, ptr)])


def _conv_out_shape(x_shape, w_shape, stride, padding, dilation):
    """[N, O, OH, OW] of a convolution of input ``x_shape`` with weights ``w_shape``."""
    (n, _, h, w), (o, _, kh, kw) = x_shape, w_shape
    return [n, o] + [(i + 2 * p - d * (k - 1) - 1) // s + 1
                     for i, p, d, k, s in zip((h, w), padding, dilation, (kh, kw), stride)]


class ConvPlan:
    """Primitives for one (input shape, weight shape, stride, padding, dilation, groups, bias) combination."""

    def __init__(self, x_shape, w_shape, stride, padding, dilation, groups, bias, blocked=False, act=None):
        lib = self.lib = _library()
        self.act = act  # None, or the slope of a (leaky) ReLU applied to the output in the same pass
        n, c, h, w = x_shape
        o, cg, kh, kw = w_shape
        self.in_shape, self.out_shape = [n, c, h, w], _conv_out_shape(x_shape, w_shape, stride, padding, dilation)
        if min(self.out_shape[2:]) < 1:
            raise OneDNNError(f"convolution output would be empty for input {x_shape}")
        self.bias = bias
        wdims, wtag = ([groups, o // groups, cg, kh, kw], _TAG_ABCDE) if groups > 1 else ([o, cg, kh, kw], _TAG_ABCD)
        # the activations as the caller holds them: plain NCHW, or inside a conv_chain the chain's blocked layout
        act_md = _chain_md if blocked else (lambda shape: lib.md(shape, _TAG_ABCD))
        user = {"src": act_md(list(x_shape)), "w": lib.md(wdims, wtag), "dst": act_md(self.out_shape)}
        anys = {"src": lib.md(x_shape, _TAG_ANY), "w": lib.md(wdims, _TAG_ANY),
                "dst": lib.md(self.out_shape, _TAG_ANY)}
        bias_md = lib.md([o], _TAG_A) if bias else None
        geometry = (_dims(stride), _dims([d - 1 for d in dilation]), _dims(padding), _dims(padding))
        attr = None if act is None else lib.relu_attr(act)
        fwd, bwd_d, bwd_w = self._descriptors(anys, bias_md, geometry, attr)
        if "gemm" in lib.impl(fwd):
            # a GEMM-based kernel (e.g. groups whose channels are not a multiple of 8) takes the plain tensors as
            # they are: no reorders
            fwd, bwd_d, bwd_w = self._descriptors(user, bias_md, geometry, attr)
        self.impls = {"forward": lib.impl(fwd), "backward_data": lib.impl(bwd_d), "backward_weights": lib.impl(bwd_w)}
        self.fwd_prim, self.bwd_d_prim, self.bwd_w_prim = lib.primitive(fwd), lib.primitive(bwd_d), lib.primitive(bwd_w)
        q = lambda pd, what: lib.query_md(pd, what)  # noqa: E731
        # forward
        self.f_src = _Operand(lib, user["src"], q(fwd, _Q_SRC), "src", True)
        self.f_w = _Operand(lib, user["w"], q(fwd, _Q_WEIGHTS), "w", True)
        self.f_dst = _Operand(lib, user["dst"], q(fwd, _Q_DST), "dst", False)
        # backward data: diff_dst in, weights in, diff_src out
        self.d_ddst = _Operand(lib, user["dst"], q(bwd_d, _Q_DIFF_DST), "ddst", True)
        self.d_w = _Operand(lib, user["w"], q(bwd_d, _Q_WEIGHTS), "w", True)
        self.d_dsrc = _Operand(lib, user["src"], q(bwd_d, _Q_DIFF_SRC), "dsrc", False)
        # backward weights: src in, diff_dst in, diff_weights (+ diff_bias) out
        self.w_src = _Operand(lib, user["src"], q(bwd_w, _Q_SRC), "src", True)
        self.w_ddst = _Operand(lib, user["dst"], q(bwd_w, _Q_DIFF_DST), "ddst2", True)
        self.w_dw = _Operand(lib, user["w"], q(bwd_w, _Q_DIFF_WEIGHTS), "dw", False)
        self.bias_mem = lib.memory(bias_md) if bias else None
        # both gradients take diff_dst in one format (the usual case): one reorder serves both
        self.shared_ddst = not self.d_ddst.plain and lib.same(self.d_ddst.op_md, self.w_ddst.op_md)

    def _descriptors(self, mds, bias_md, geometry, attr):
        lib = self.lib
        fwd, bwd_d, bwd_w = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
        lib.check(lib.lib.dnnl_convolution_forward_primitive_desc_create(
            ctypes.byref(fwd), lib.engine, _FORWARD_TRAINING, _CONV_DIRECT, mds["src"], mds["w"], bias_md,
            mds["dst"], *geometry, attr), "convolution forward descriptor")
        lib.check(lib.lib.dnnl_convolution_backward_data_primitive_desc_create(
            ctypes.byref(bwd_d), lib.engine, _CONV_DIRECT, mds["src"], mds["w"], mds["dst"], *geometry, fwd,
            None), "convolution backward-data descriptor")
        lib.check(lib.lib.dnnl_convolution_backward_weights_primitive_desc_create(
            ctypes.byref(bwd_w), lib.engine, _CONV_DIRECT, mds["src"], mds["w"], bias_md, mds["dst"],
            *geometry, fwd, None), "convolution backward-weights descriptor")
        return fwd, bwd_d, bwd_w

    def forward(self, x, w, b):
        import paddle

        y = paddle.empty(self.out_shape, dtype="float32")
        src, wt = self.f_src.into_op(x.data_ptr()), self.f_w.into_op(w.data_ptr())
        dst = self.f_dst.out_ptr(y.data_ptr())
        args = [(_ARG_SRC, self.f_src.op_mem, src), (_ARG_WEIGHTS, self.f_w.op_mem, wt),
                (_ARG_DST, self.f_dst.op_mem, dst)]
        if self.bias:
            args.append((_ARG_BIAS, self.bias_mem, b.data_ptr()))
        self.lib.run(self.fwd_prim, args)
        self.f_dst.back_to_user(dst, y.data_ptr())
        return y

    def backward(self, x, w, dy, need_dx, need_dw):
        import paddle

        dx = dw = db = ddst = None
        if need_dx:
            dx = paddle.empty(self.in_shape, dtype="float32")
            ddst, wt = self.d_ddst.into_op(dy.data_ptr()), self.d_w.into_op(w.data_ptr())
            dsrc = self.d_dsrc.out_ptr(dx.data_ptr())
            self.lib.run(self.bwd_d_prim, [(_ARG_DIFF_DST, self.d_ddst.op_mem, ddst),
                                           (_ARG_WEIGHTS, self.d_w.op_mem, wt),
                                           (_ARG_DIFF_SRC, self.d_dsrc.op_mem, dsrc)])
            self.d_dsrc.back_to_user(dsrc, dx.data_ptr())
        if need_dw:
            dw = paddle.empty(w.shape, dtype="float32")
            src = self.w_src.into_op(x.data_ptr())
            ddst = ddst if ddst is not None and self.shared_ddst else self.w_ddst.into_op(dy.data_ptr())
            dwt = self.w_dw.out_ptr(dw.data_ptr())
            args = [(_ARG_SRC, self.w_src.op_mem, src), (_ARG_DIFF_DST, self.w_ddst.op_mem, ddst),
                    (_ARG_DIFF_WEIGHTS, self.w_dw.op_mem, dwt)]
            if self.bias:
                db = paddle.empty([self.out_shape[1]], dtype="float32")
                args.append((_ARG_DIFF_BIAS, self.bias_mem, db.data_ptr()))
            self.lib.run(self.bwd_w_prim, args)
            self.w_dw.back_to_user(dwt, dw.data_ptr())
        return dx, dw, db


_PLANS = {}


def _plan(x_shape, w_shape, stride, padding, dilation, groups, bias, blocked=False, act=None):
    key = (tuple(x_shape), tuple(w_shape), stride, padding, dilation, groups, bias, blocked, act)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = ConvPlan(*key)
    return plan


def _conv_grads(ctx, x, weight, dy):
    """A convolution PyLayer's gradients for the output gradient ``dy``: (dx, dw) or (dx, dw, db)."""
    dx, dw, db = ctx.plan.backward(x, weight, _c(dy), need_dx=not x.stop_gradient, need_dw=not weight.stop_gradient)
    return (dx, dw, db) if ctx.has_bias else (dx, dw)


def _conv_layer():
    from paddle.autograd import PyLayer

    class OneDNNConv2D(PyLayer):
        @staticmethod
        def forward(ctx, x, weight, bias, plan):
            ctx.plan, ctx.has_bias = plan, bias is not None
            ctx.save_for_backward(x, weight)
            return plan.forward(x, weight, bias)

        @staticmethod
        def backward(ctx, dy):
            return _conv_grads(ctx, *ctx.saved_tensor(), dy)

    class OneDNNConv2DReLU(PyLayer):
        """A convolution and the (leaky) ReLU after it in one pass; the ReLU's gradient is taken from its output
        (for a slope >= 0 the output is > 0, = 0, < 0 exactly where the convolution's output is)."""

        @staticmethod
        def forward(ctx, x, weight, bias, plan):
            ctx.plan, ctx.has_bias = plan, bias is not None
            y = plan.forward(x, weight, bias)
            ctx.save_for_backward(x, weight, y)
            return y

        @staticmethod
        def backward(ctx, dy):
            x, weight, y = ctx.saved_tensor()
            dy, dpre = _c(dy), _empty(y.shape)
            _leaky(tuple(y.shape), float(ctx.plan.act))[1].run(
                {_ARG_SRC: y.data_ptr(), _ARG_DIFF_DST: dy.data_ptr(), _ARG_DIFF_SRC: dpre.data_ptr()})
            return _conv_grads(ctx, x, weight, dpre)

    class OneDNNConv2DAdd(PyLayer):
        """A convolution whose output gets ``residual`` added in place; the residual's gradient is the output's
        (handed on once, so Paddle may accumulate into it)."""

        @staticmethod
        def forward(ctx, x, weight, bias, residual, plan):
            ctx.plan, ctx.has_bias = plan, bias is not None
            ctx.save_for_backward(x, weight)
            y = plan.forward(x, weight, bias)
            shape = tuple(y.shape)
            _binary(_BINARY_ADD, shape, shape).run(
                {_ARG_SRC: y.data_ptr(), _ARG_SRC + 1: residual.data_ptr(), _ARG_DST: y.data_ptr()})
            return y

        @staticmethod
        def backward(ctx, dy):
            return _conv_grads(ctx, *ctx.saved_tensor(), dy) + (dy,)

    class OneDNNConv2DTranspose(PyLayer):
        """The transposed convolution of ``plan``'s convolution (which maps the output's shape to the input's
        with the same weights): its forward is that convolution's data gradient, its gradients are that
        convolution's forward and weight gradient."""

        @staticmethod
        def forward(ctx, x, weight, plan):
            ctx.plan = plan
            ctx.save_for_backward(x, weight)
            return plan.backward(None, weight, x, need_dx=True, need_dw=False)[0]

        @staticmethod
        def backward(ctx, dy):
            x, weight = ctx.saved_tensor()
            dy = dy if dy.is_contiguous() else dy.contiguous()
            dx = ctx.plan.forward(dy, weight, None) if not x.stop_gradient else None
            dw = ctx.plan.backward(dy, weight, x, need_dx=False, need_dw=True)[1] if not weight.stop_gradient else None
            return dx, dw

    return OneDNNConv2D, OneDNNConv2DReLU, OneDNNConv2DAdd, OneDNNConv2DTranspose


_FN = {}


def _conv_fn(name):
    if not _FN:
        _FN["conv"], _FN["conv_relu"], _FN["conv_add"], _FN["transpose"] = _conv_layer()
    return _FN[name]


def conv2d(x, weight, bias, stride, padding, dilation, groups, blocked=False, act=None, residual=None):
    """oneDNN convolution of float32 NCHW CPU tensors, differentiable; ``stride``/``padding``/``dilation`` pairs.
    ``blocked``: input and output (and their gradients) are in a conv_chain's blocked layout; ``act``: the slope
    of a (leaky) ReLU applied to the output (None: none); ``residual``: a tensor of the output's shape added to
    it (with ``act`` None)."""
    x = x if x.is_contiguous() else x.contiguous()
    plan = _plan(x.shape, weight.shape, stride, padding, dilation, groups, bias is not None, blocked, act)
    if residual is not None:
        return _conv_fn("conv_add").apply(x, weight, bias, _c(residual), plan)
    return _conv_fn("conv" if act is None else "conv_relu").apply(x, weight, bias, plan)


def conv_add(conv, x, residual, native):
    """``conv(x) + residual`` (``conv`` an ``nn.Conv2D``, ``residual`` of its output's shape) as one call when
    ``conv`` is routed here: the sum is added into the convolution's output and needs no gradient of its own."""
    if "_native_forward" in conv.__dict__ and _routable(conv):
        return conv.forward(x, residual=residual)
    return native(conv, x, residual)


def conv2d_transpose(x, weight, bias, stride, padding, native):
    """oneDNN transposed convolution (groups 1, no dilation or output padding) of float32 NCHW CPU tensors;
    ``native()`` when the output size is not the one a convolution of the same geometry maps back from."""
    n, c, h, w = x.shape
    cout, (kh, kw) = weight.shape[1], weight.shape[2:]
    out = [n, cout, (h - 1) * stride[0] - 2 * padding[0] + kh, (w - 1) * stride[1] - 2 * padding[1] + kw]
    plan = _plan(out, weight.shape, stride, padding, (1, 1), 1, False)
    if plan.out_shape != [n, c, h, w]:
        return native()
    y = _conv_fn("transpose").apply(x if x.is_contiguous() else x.contiguous(), weight, plan)
    return y if bias is None else add(y, bias.reshape([1, -1, 1, 1]), lambda a, b: a + b)


# ---- element-wise primitives on plain tensors ------------------------------------------------------------------

class _Plain:
    """A primitive whose arguments are plain row-major tensors (no reorders): ``run({arg: data pointer})``."""

    def __init__(self, pd, args):
        lib = self.lib = _library()
        self.prim, self.impl = lib.primitive(pd), lib.impl(pd)
        self.mems = {arg: lib.memory(md) for arg, md in args.items()}

    def run(self, ptrs):
        self.lib.run(self.prim, [(arg, self.mems[arg], ptr) for arg, ptr in ptrs.items()])


def _pd():
    return ctypes.c_void_p()


def _reorder(src_md, dst_md):
    """A reorder (a copy from one memory layout or view into another) as a ``_Plain`` primitive."""
    return _Plain(_library().reorder_pd(src_md, dst_md), {_ARG_SRC: src_md, _ARG_DST: dst_md})


_PRIMS = {}


def _cached(key, build):
    prim = _PRIMS.get(key)
    if prim is None:
        prim = _PRIMS[key] = build()
    return prim


def _plain_md(shape):
    return _library().md(shape, 2 + len(shape) - 1)  # dnnl_a, dnnl_ab, ... dnnl_abcdef: plain row-major


def _binary(alg, shape0, shape1):
    def build():
        lib = _library()
        m0, m1 = _plain_md(shape0), _plain_md(shape1)
        pd = _pd()
        lib.check(lib.lib.dnnl_binary_primitive_desc_create(ctypes.byref(pd), lib.engine, alg, m0, m1, m0, None),
                  "binary descriptor")
        return _Plain(pd, {_ARG_SRC: m0, _ARG_SRC + 1: m1, _ARG_DST: m0})  # DNNL_ARG_SRC_1 = 2
    return _cached(("binary", alg, shape0, shape1), build)


def _concat(shapes, axis):
    """The concatenation of plain tensors of ``shapes`` along ``axis`` and, for its gradient, one reorder per
    input out of its window of the output."""
    def build():
        lib = _library()
        out_shape = list(shapes[0])
        out_shape[axis] = sum(s[axis] for s in shapes)
        dst, srcs = _plain_md(out_shape), [_plain_md(s) for s in shapes]
        pd = _pd()
        arr = (ctypes.c_void_p * len(srcs))(*[m.value for m in srcs])
        lib.check(lib.lib.dnnl_concat_primitive_desc_create(ctypes.byref(pd), lib.engine, dst, len(srcs), axis,
                                                             arr, None), "concat descriptor")
        fwd = _Plain(pd, {_ARG_MULTIPLE_SRC + i: m for i, m in enumerate(srcs)} | {_ARG_DST: dst})
        grads, offset = [], 0
        for shape, md in zip(shapes, srcs):
            offsets = [0] * len(shape)
            offsets[axis] = offset
            offset += shape[axis]
            window = ctypes.c_void_p()
            lib.check(lib.lib.dnnl_memory_desc_create_submemory(ctypes.byref(window), dst, _dims(shape),
                                                                 _dims(offsets)), "sub-memory descriptor")
            grads.append(_reorder(window, md))
        return tuple(out_shape), fwd, grads
    return _cached(("concat", tuple(shapes), axis), build)


def _reduce(src_shape, dst_shape, alg=_REDUCE_SUM):
    def build():
        lib = _library()
        ms, md = _plain_md(src_shape), _plain_md(dst_shape)
        pd = _pd()
        lib.check(lib.lib.dnnl_reduction_primitive_desc_create(ctypes.byref(pd), lib.engine, alg, ms, md,
                                                                0.0, 0.0, None), "reduction descriptor")
        return _Plain(pd, {_ARG_SRC: ms, _ARG_DST: md})
    return _cached(("reduce", alg, src_shape, dst_shape), build)


def _leaky(shape, alpha):
    def build():
        lib = _library()
        m = _plain_md(shape)
        fwd, bwd = _pd(), _pd()
        lib.check(lib.lib.dnnl_eltwise_forward_primitive_desc_create(
            ctypes.byref(fwd), lib.engine, _FORWARD_TRAINING, _ELTWISE_RELU, m, m, alpha, 0.0, None),
            "eltwise descriptor")
        lib.check(lib.lib.dnnl_eltwise_backward_primitive_desc_create(
            ctypes.byref(bwd), lib.engine, _ELTWISE_RELU, m, m, m, alpha, 0.0, fwd, None), "eltwise descriptor")
        return (_Plain(fwd, {_ARG_SRC: m, _ARG_DST: m}),
                _Plain(bwd, {_ARG_SRC: m, _ARG_DIFF_DST: m, _ARG_DIFF_SRC: m}))
    return _cached(("leaky", shape, alpha), build)


def _pool_avg(shape, kernel, stride, out_hw):
    def build():
        lib = _library()
        n, c, h, w = shape
        ms, md = _plain_md(shape), _plain_md((n, c) + out_hw)
        pad_r = [(o - 1) * s + k - i for o, s, k, i in zip(out_hw, stride, kernel, (h, w))]
        geometry = (_dims(stride), _dims(kernel), _dims([0, 0]), _dims([0, 0]), _dims(pad_r))
        fwd, bwd = _pd(), _pd()
        lib.check(lib.lib.dnnl_pooling_forward_primitive_desc_create(
            ctypes.byref(fwd), lib.engine, _FORWARD_TRAINING, _POOL_AVG_EXCLUDE, ms, md, *geometry, None),
            "pooling descriptor")
        lib.check(lib.lib.dnnl_pooling_backward_primitive_desc_create(
            ctypes.byref(bwd), lib.engine, _POOL_AVG_EXCLUDE, ms, md, *geometry, fwd, None), "pooling descriptor")
        return _Plain(fwd, {_ARG_SRC: ms, _ARG_DST: md}), _Plain(bwd, {_ARG_DIFF_DST: md, _ARG_DIFF_SRC: ms})
    return _cached(("pool", shape, kernel, stride, out_hw), build)


def _resample(alg, shape, out_hw):
    """The forward x2 resize (oneDNN's resampling backward is a slow generic kernel: see _resize_grad)."""
    def build():
        lib = _library()
        ms, md = _plain_md(shape), _plain_md(tuple(shape[:2]) + out_hw)
        fwd = _pd()
        lib.check(lib.lib.dnnl_resampling_forward_primitive_desc_create(
            ctypes.byref(fwd), lib.engine, _FORWARD_TRAINING, alg, None, ms, md, None), "resampling descriptor")
        return _Plain(fwd, {_ARG_SRC: ms, _ARG_DST: md})  # its gradient: _resize_grad (GEMMs)
    return _cached(("resample", alg, shape, out_hw), build)


def _every_second(shape):
    """``x[:, :, ::2, ::2]`` of a plain [N, C, H, W] tensor (floor of odd sizes) as a reorder out of a strided
    view of it, and for the gradient the reorder back into that view (of a zeroed tensor)."""
    def build():
        lib = _library()
        n, c, h, w = shape
        out = (n, c, h // 2, w // 2)
        view = ctypes.c_void_p()
        lib.check(lib.lib.dnnl_memory_desc_create_with_strides(ctypes.byref(view), 4, _dims(out), _F32,
                                                                _dims([c * h * w, h * w, 2 * w, 2])),
                  "strided memory descriptor")
        plain = _plain_md(out)
        return out, _reorder(view, plain), _reorder(plain, view)
    return _cached(("every_second", shape), build)


def _sum_to(full, small):
    """``full`` summed over the axes where ``small`` has 1.  Sums that oneDNN's reduction runs with reference
    code -- over the channels alone (a [N, 1, H, W] operand) and over N, H and W (a [1, C, 1, 1] bias) -- are
    products with a vector of ones (GEMMs); the others are oneDNN reductions."""
    import paddle

    shape = tuple(full.shape)
    if len(shape) == 4 and small[1] == 1 and small[0] == shape[0] and small[2:] == shape[2:] and shape[1] > 1:
        ones = paddle.ones([1, shape[1]], dtype="float32")
        return paddle.matmul(ones, full.reshape([shape[0], shape[1], -1])).reshape(list(small))
    if len(shape) == 4 and small == (1, shape[1], 1, 1) and shape[0] > 1:
        ones = paddle.ones([shape[2] * shape[3], 1], dtype="float32")
        per_image = paddle.matmul(full.reshape([shape[0], shape[1], -1]), ones)  # [N, C, 1]
        return per_image.sum(axis=0).reshape(list(small))
    out = _empty(small)
    _reduce(shape, small).run({_ARG_SRC: full.data_ptr(), _ARG_DST: out.data_ptr()})
    return out


def _empty(shape):
    import paddle

    return paddle.empty(list(shape), dtype="float32")


def _c(t):
    return t if t.is_contiguous() else t.contiguous()


def _elementwise_layers():
    from paddle.autograd import PyLayer

    class Mul(PyLayer):  # a * b, b broadcast to a's shape (or the same shape)
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            out = _empty(a.shape)
            _binary(_BINARY_MUL, tuple(a.shape), tuple(b.shape)).run(
                {_ARG_SRC: a.data_ptr(), _ARG_SRC + 1: b.data_ptr(), _ARG_DST: out.data_ptr()})
            return out

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensor()
            g, shape, small = _c(g), tuple(a.shape), tuple(b.shape)
            da = db = None
            if not a.stop_gradient:
                da = _empty(shape)
                _binary(_BINARY_MUL, shape, small).run(
                    {_ARG_SRC: g.data_ptr(), _ARG_SRC + 1: b.data_ptr(), _ARG_DST: da.data_ptr()})
            if not b.stop_gradient:
                full = _empty(shape)
                _binary(_BINARY_MUL, shape, shape).run(
                    {_ARG_SRC: g.data_ptr(), _ARG_SRC + 1: a.data_ptr(), _ARG_DST: full.data_ptr()})
                db = full if small == shape else _sum_to(full, small)
            return da, db

    class AddBroadcast(PyLayer):  # a + b, b broadcast to a's (larger) shape
        @staticmethod
        def forward(ctx, a, b):
            ctx.shapes = tuple(a.shape), tuple(b.shape)
            out = _empty(a.shape)
            _binary(_BINARY_ADD, *ctx.shapes).run(
                {_ARG_SRC: a.data_ptr(), _ARG_SRC + 1: b.data_ptr(), _ARG_DST: out.data_ptr()})
            return out

        @staticmethod
        def backward(ctx, g):
            g = _c(g)
            return g, _sum_to(g, ctx.shapes[1])

    class LeakyReLU(PyLayer):
        @staticmethod
        def forward(ctx, x, alpha):
            ctx.save_for_backward(x)
            ctx.prims = _leaky(tuple(x.shape), float(alpha))
            out = _empty(x.shape)
            ctx.prims[0].run({_ARG_SRC: x.data_ptr(), _ARG_DST: out.data_ptr()})
            return out

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensor()
            g, dx = _c(g), _empty(x.shape)
            ctx.prims[1].run({_ARG_SRC: x.data_ptr(), _ARG_DIFF_DST: g.data_ptr(), _ARG_DIFF_SRC: dx.data_ptr()})
            return dx

    class Resize(PyLayer):  # pooling or resampling: a forward and a backward primitive over plain tensors
        @staticmethod
        def forward(ctx, x, prims, out_shape):
            ctx.prims, ctx.in_shape = prims, tuple(x.shape)
            out = _empty(out_shape)
            prims[0].run({_ARG_SRC: x.data_ptr(), _ARG_DST: out.data_ptr()})
            return out

        @staticmethod
        def backward(ctx, g):
            g = _c(g)
            if callable(ctx.prims[1]):  # a gradient computed with Paddle's GEMMs
                return ctx.prims[1](g, ctx.in_shape)
            dx = _empty(ctx.in_shape)
            ctx.prims[1].run({_ARG_DIFF_DST: g.data_ptr(), _ARG_DIFF_SRC: dx.data_ptr()})
            return dx

    class EverySecond(PyLayer):  # x[:, :, ::2, ::2]
        @staticmethod
        def forward(ctx, x):
            ctx.in_shape = tuple(x.shape)
            shape, ctx.fwd, ctx.bwd = _every_second(ctx.in_shape)
            out = _empty(shape)
            ctx.fwd.run({_ARG_SRC: x.data_ptr(), _ARG_DST: out.data_ptr()})
            return out

        @staticmethod
        def backward(ctx, g):
            import paddle

            g, dx = _c(g), paddle.zeros(list(ctx.in_shape), dtype="float32")
            ctx.bwd.run({_ARG_SRC: g.data_ptr(), _ARG_DST: dx.data_ptr()})
            return dx

    class Concat(PyLayer):
        @staticmethod
        def forward(ctx, axis, *xs):
            shape, fwd, ctx.grads = _concat([tuple(x.shape) for x in xs], axis)
            ctx.shapes, ctx.needs = [tuple(x.shape) for x in xs], [not x.stop_gradient for x in xs]
            out = _empty(shape)
            fwd.run({_ARG_MULTIPLE_SRC + i: x.data_ptr() for i, x in enumerate(xs)} | {_ARG_DST: out.data_ptr()})
            return out

        @staticmethod
        def backward(ctx, g):
            g, grads = _c(g), []
            for shape, need, prim in zip(ctx.shapes, ctx.needs, ctx.grads):
                dx = None
                if need:
                    dx = _empty(shape)
                    prim.run({_ARG_SRC: g.data_ptr(), _ARG_DST: dx.data_ptr()})
                grads.append(dx)
            return tuple(grads)

    return {"mul": Mul, "add": AddBroadcast, "leaky_relu": LeakyReLU, "resize": Resize, "concat": Concat,
            "every_second": EverySecond, "relayout": _relayout_layer()}


_EW = {}


def _layer(name):
    if not _EW:
        _EW.update(_elementwise_layers())
    return _EW[name]


def _eligible(*tensors):
    import paddle

    return paddle.in_dynamic_mode() and all(
        t.dtype == paddle.float32 and t.place.is_cpu_place() for t in tensors)


def _broadcasts_to(small, big):
    return len(small) == len(big) and all(s in (1, b) for s, b in zip(small, big))


def multiply(a, b, native):
    """``a * b`` (one of them may broadcast to the other's shape)."""
    if _eligible(a, b) and len(a.shape) <= 6:
        sa, sb = tuple(a.shape), tuple(b.shape)
        if _broadcasts_to(sb, sa):
            return _layer("mul").apply(_c(a), _c(b))
        if _broadcasts_to(sa, sb):
            return _layer("mul").apply(_c(b), _c(a))
    return native(a, b)


def add(a, b, native):
    """``a + b``; oneDNN when one side broadcasts (Paddle's own add of equal shapes is close in speed, and its
    gradient is Paddle's too)."""
    if _eligible(a, b) and len(a.shape) <= 6:
        sa, sb = tuple(a.shape), tuple(b.shape)
        if sa != sb and _broadcasts_to(sb, sa):
            return _layer("add").apply(_c(a), _c(b))
        if sa != sb and _broadcasts_to(sa, sb):
            return _layer("add").apply(_c(b), _c(a))
    return native(a, b)


def concat(xs, axis, native):
    """``paddle.concat(xs, axis)`` of same-rank tensors."""
    xs = list(xs)
    if _eligible(*xs) and len(xs) > 1 and all(len(x.shape) == len(xs[0].shape) <= 6 for x in xs):
        axis = axis % len(xs[0].shape)
        return _layer("concat").apply(axis, *[_c(x) for x in xs])
    return native(xs, axis)


def leaky_relu(x, alpha, native):
    if _eligible(x) and len(x.shape) <= 6:
        return _layer("leaky_relu").apply(_c(x), float(alpha))
    return native(x)


def avg_pool(x, kernel, stride, ceil_mode, native):
    """Average pooling without padding, padded windows of ``ceil_mode`` averaged over their real pixels."""
    if _eligible(x) and len(x.shape) == 4:
        n, c, h, w = x.shape
        rnd = (lambda v: -(-v // 1)) if ceil_mode else int
        out_hw = tuple(int(rnd((i - k) / s)) + 1 for i, k, s in zip((h, w), kernel, stride))
        if ceil_mode:  # a last window must start inside the input (Paddle's and PyTorch's rule)
            out_hw = tuple(o - 1 if (o - 1) * s >= i else o for o, s, i in zip(out_hw, stride, (h, w)))
        if tuple(kernel) == tuple(stride) == (2, 2) and h % 2 == 0 and w % 2 == 0:
            # the mean of each 2 x 2 block is also the bilinear (half-pixel) resize to half size, a JIT kernel
            # where oneDNN's pooling of plain tensors is a slow generic one; its gradient: a quarter of the
            # output gradient in each pixel of the block (nearest x2)
            prims = (_resample(_RESAMPLE_LINEAR, (n, c, h, w), out_hw), _pool2_grad)
            return _layer("resize").apply(_c(x), prims, (n, c) + out_hw)
        if min(out_hw) >= 1:
            prims = _pool_avg((n, c, h, w), tuple(kernel), tuple(stride), out_hw)
            return _layer("resize").apply(_c(x), prims, (n, c) + out_hw)
    return native(x)


def _pool2_grad(g, shape):
    g = g * 0.25
    dx = _empty(shape)
    up = _resample(_RESAMPLE_NEAREST, tuple(g.shape), tuple(shape[2:]))
    up.run({_ARG_SRC: g.data_ptr(), _ARG_DST: dx.data_ptr()})
    return dx


def mean_hw(x, native):
    """The mean over H and W, kept as [N, C, 1, 1]."""
    if _eligible(x) and len(x.shape) == 4 and x.shape[2] * x.shape[3] > 1:  # (a reduction must reduce)
        n, c, h, w = x.shape
        # forward: oneDNN's mean reduction (a JIT kernel; its pooling of plain tensors is a generic one)
        prims = (_reduce((n, c, h, w), (n, c, 1, 1), _REDUCE_MEAN), _pool_avg((n, c, h, w), (h, w), (1, 1), (1, 1))[1])
        return _layer("resize").apply(_c(x), prims, (n, c, 1, 1))
    return native(x)


def _resize_matrix(n, mode):
    """[2n, n]: rows of the x2 resize along one axis -- ``bilinear`` (half-pixel centres, edges clamped) or
    ``nearest`` (each input pixel twice)."""
    import paddle

    a = np.zeros((2 * n, n), dtype=np.float32)
    for o in range(2 * n):
        if mode == "nearest":
            a[o, o // 2] = 1
            continue
        src = max((o + 0.5) / 2 - 0.5, 0.0)
        i0 = int(src)
        lam = src - i0
        a[o, i0] += 1 - lam
        a[o, min(i0 + 1, n - 1)] += lam
    return paddle.to_tensor(a)


_MATRICES = {}


def _resize_grad(mode):
    """The gradient of the x2 resize: ``A_h^T g A_w`` with two GEMMs (oneDNN's resampling backward runs a slow
    generic kernel)."""
    import paddle

    def grad(g, shape):
        n, c, h, w = shape
        for k in (h, w):
            if (k, mode) not in _MATRICES:
                _MATRICES[k, mode] = _resize_matrix(k, mode)
        t = paddle.matmul(g.reshape([n * c, 2 * h, 2 * w]), _MATRICES[w, mode])  # [NC, 2H, W]
        return paddle.matmul(_MATRICES[h, mode], t, transpose_x=True).reshape([n, c, h, w])

    return grad


def upsample2(x, mode, native):
    """Resize by 2: ``bilinear`` (half-pixel centres, align_corners False) or ``nearest`` (2 x 2 blocks)."""
    if _eligible(x) and len(x.shape) == 4:
        n, c, h, w = x.shape
        alg = _RESAMPLE_LINEAR if mode == "bilinear" else _RESAMPLE_NEAREST
        prims = (_resample(alg, (n, c, h, w), (2 * h, 2 * w)), _resize_grad(mode))
        return _layer("resize").apply(_c(x), prims, (n, c, 2 * h, 2 * w))
    return native(x)


# ---- chains of convolutions in a blocked layout ---------------------------------------------------------------

_CHAIN = threading.local()  # .active: the routed convolutions run inside a conv_chain


def _chain_md(shape):
    """The blocked layout oneDNN's convolution kernels choose for activations of ``shape`` (that of a 3 x 3
    convolution keeping the channels), if it holds the plain tensor's elements and nothing more; else None."""
    def build():
        lib = _library()
        n, c, h, w = shape
        pd = _pd()
        lib.check(lib.lib.dnnl_convolution_forward_primitive_desc_create(
            ctypes.byref(pd), lib.engine, _FORWARD_TRAINING, _CONV_DIRECT, lib.md(shape, _TAG_ANY),
            lib.md([c, c, 3, 3], _TAG_ANY), None, lib.md(shape, _TAG_ANY), _dims([1, 1]), _dims([0, 0]),
            _dims([1, 1]), _dims([1, 1]), None), "convolution forward descriptor")
        md = lib.query_md(pd, _Q_SRC)
        return md if lib.size(md) == n * c * h * w * 4 else None
    return _cached(("chain_md", tuple(shape)), build)


def _chain_reorders(shape):
    def build():
        plain, blocked = _plain_md(shape), _chain_md(shape)
        return _reorder(plain, blocked), _reorder(blocked, plain)
    return _cached(("chain_reorders", tuple(shape)), build)


def _relayout_layer():
    from paddle.autograd import PyLayer

    class Relayout(PyLayer):
        """The same [N, C, H, W] values in another memory layout (``to_blocked``: plain -> the chain's blocked
        layout, else back); the gradient goes the other way."""

        @staticmethod
        def forward(ctx, x, to_blocked):
            ctx.to_blocked = to_blocked
            into, back = _chain_reorders(tuple(x.shape))
            out = _empty(x.shape)
            (into if to_blocked else back).run({_ARG_SRC: x.data_ptr(), _ARG_DST: out.data_ptr()})
            return out

        @staticmethod
        def backward(ctx, g):
            g = _c(g)
            into, back = _chain_reorders(tuple(g.shape))
            dx = _empty(g.shape)
            (back if ctx.to_blocked else into).run({_ARG_SRC: g.data_ptr(), _ARG_DST: dx.data_ptr()})
            return dx

    return Relayout


def _chain_convs(layers):
    """The convolutions of ``layers`` if every leaf is a routed convolution that keeps the shape of its input
    (groups 1, stride 1, "same" padding, as many output channels as input channels) or a routed ReLU / leaky
    ReLU -- layers that compute the same on a blocked layout (the activations element by element); else None.
    The structure is looked at once; whether the leaves are routed, at every call (install / remove)."""
    import paddle.nn as nn

    if "_onednn_chain" not in layers.__dict__:
        convs, leaves = [], []
        for layer in layers.sublayers(include_self=True):
            if layer.sublayers():
                continue
            leaves.append(layer)
            if type(layer) in (nn.ReLU, nn.LeakyReLU):
                continue
            if not _routable(layer):
                convs = None
                break
            k, dil, pad = layer.weight.shape[2:], _pairs(layer._dilation), _pairs(layer._updated_padding)
            if (int(layer._groups) != 1 or _pairs(layer._stride) != (1, 1) or layer._in_channels != layer._out_channels
                    or any(kk % 2 == 0 or p != d * (kk - 1) // 2 for kk, d, p in zip(k, dil, pad))):
                convs = None
                break
            convs.append(layer)
        layers.__dict__["_onednn_chain"] = (convs, leaves)
    convs, leaves = layers.__dict__["_onednn_chain"]
    if not convs or not all("_native_forward" in layer.__dict__ for layer in leaves):
        return None
    return convs


def conv_chain(layers, x, native):
    """``layers(x)`` for a chain of convolutions, ReLUs and sums of equal-shape activations (the network's
    promise, ``networks.common.Ops.conv_chain``): the input is reordered once into the blocked layout of
    oneDNN's convolution kernels, every activation inside stays in it (the convolutions take and give it
    without reorders; ReLUs and sums work element by element, so any layout is the same to them), and the
    output is reordered back once."""
    convs = _chain_convs(layers)
    if (not convs or len(x.shape) != 4 or getattr(_CHAIN, "active", False)
            or not _eligible(x, *[c.weight for c in convs])
            or any(c._in_channels != x.shape[1] for c in convs) or _chain_md(tuple(x.shape)) is None):
        return native(layers, x)
    relayout = _layer("relayout")
    _CHAIN.active = True
    try:
        y = layers(relayout.apply(_c(x), True))
    finally:
        _CHAIN.active = False
    return relayout.apply(y, False)


def nearest_half(x, native):
    """Nearest downsampling by 2 as rows and columns 0, 2, 4, ... (floor of odd sizes)."""
    if _eligible(x) and len(x.shape) == 4 and min(x.shape[2:]) >= 2:
        return _layer("every_second").apply(_c(x))
    return native(x)


@contextlib.contextmanager
def interrupts_unwrapped():
    """A Ctrl-C that lands in a PyLayer's backward (Python run by Paddle's C++ autograd) comes back as an
    ``OSError`` naming KeyboardInterrupt; inside this block it is a KeyboardInterrupt again."""
    try:
        yield
    except OSError as exc:
        if "KeyboardInterrupt" in str(exc):
            raise KeyboardInterrupt from None
        raise


# ---- routing a network's convolutions --------------------------------------------------------------------------

def _pairs(v):
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(i) for i in v)


def _routable(layer):
    """Whether ``layer`` is an ``nn.Conv2D`` this module computes (NCHW, explicit symmetric zero padding)."""
    import paddle.nn as nn

    return (type(layer) is nn.Conv2D and layer._data_format == "NCHW" and layer._padding_mode == "zeros"
            and getattr(layer, "_padding_algorithm", None) == "EXPLICIT"
            and len(getattr(layer, "_updated_padding", ())) == 2)


def _routed_forward(layer, native):
    stride, dilation, groups = _pairs(layer._stride), _pairs(layer._dilation), int(layer._groups)
    padding = _pairs(layer._updated_padding)

    def forward(x, act_layer=None, residual=None):
        """The convolution, then either ``act_layer`` (a (leaky) ReLU, see _relu_slope) or ``+ residual`` when
        given: in the same call on oneDNN (a residual of the output's shape)."""
        chained = getattr(_CHAIN, "active", False)  # inside conv_chain (which checked the layers and the input)
        if not chained and not (_eligible(x, layer.weight) and len(x.shape) == 4):
            y = native(x)
            y = y if act_layer is None else act_layer(y)
            return y if residual is None else y + residual
        slope = None if act_layer is None else _relu_slope(act_layer)
        fused = residual is not None and (chained or _eligible(residual)) and list(residual.shape) == \
            _conv_out_shape(x.shape, layer.weight.shape, stride, padding, dilation)
        y = conv2d(x, layer.weight, layer.bias, stride, padding, dilation, groups, blocked=chained, act=slope,
                   residual=residual if fused else None)
        return y if residual is None or fused else y + residual

    return forward


def _slope(layer):
    """The slope of an ``nn.ReLU`` (0) or ``nn.LeakyReLU`` (its slope, if >= 0: a convolution post-op), else None."""
    import paddle.nn as nn

    if type(layer) is nn.ReLU:
        return 0.0
    if type(layer) is nn.LeakyReLU and float(layer._negative_slope) >= 0:
        return float(layer._negative_slope)
    return None


def _relu_slope(layer):
    """``_slope`` of a layer routed here (its forward replaced), else None."""
    return _slope(layer) if "_native_forward" in layer.__dict__ else None


def _sequential_forward(seq):
    """For an ``nn.Sequential`` in which a convolution this module computes is followed by a ReLU or leaky ReLU:
    its forward with each such pair as one call (the activation a post-op of the convolution); else None."""
    layers = list(seq._sub_layers.values())
    steps, i = [], 0
    while i < len(layers):
        pair = i + 1 < len(layers) and _routable(layers[i]) and _slope(layers[i + 1]) is not None
        steps.append((layers[i], layers[i + 1] if pair else None))
        i += 2 if pair else 1
    if all(act is None for _, act in steps):
        return None

    def forward(x):
        for layer, act in steps:
            if act is None:
                x = layer(x)
            elif "_native_forward" in layer.__dict__ and _relu_slope(act) is not None:
                x = layer.forward(x, act_layer=act)
            else:
                x = act(layer(x))
        return x

    return forward


def _layer_forward(layer):
    """The oneDNN forward for an activation, pooling or resize layer this module computes, else None."""
    import paddle.nn as nn

    native = layer.forward
    kind = type(layer)
    if (kind is nn.Conv2DTranspose and layer._data_format == "NCHW" and int(layer._groups) == 1
            and _pairs(layer._dilation) == (1, 1) and not layer.output_padding
            and getattr(layer, "_padding_algorithm", None) == "EXPLICIT"
            and len(getattr(layer, "_updated_padding", ())) == 2):
        stride, padding = _pairs(layer._stride), _pairs(layer._updated_padding)

        def transposed(x, output_size=None):
            if output_size is not None or not _eligible(x, layer.weight) or len(x.shape) != 4:
                return native(x, output_size)
            return conv2d_transpose(x, layer.weight, layer.bias, stride, padding, lambda: native(x))

        return transposed
    if kind is nn.LeakyReLU:
        return lambda x: leaky_relu(x, layer._negative_slope, native)
    if kind is nn.ReLU:
        return lambda x: leaky_relu(x, 0.0, native)
    if (kind is nn.AvgPool2D and layer.data_format == "NCHW" and layer.divisor is None and layer.padding == 0
            and (layer.exclusive or not layer.ceil_mode)):
        kernel = _pairs(layer.ksize)
        stride = kernel if layer.stride is None else _pairs(layer.stride)
        return lambda x: avg_pool(x, kernel, stride, layer.ceil_mode, native)
    scale = layer.scale_factor if kind is nn.Upsample else None
    if (kind is nn.Upsample and layer.size is None and layer.data_format in (None, "NCHW")
            and scale in (2, 2.0, [2, 2], (2, 2), [2.0, 2.0], (2.0, 2.0))
            and (layer.mode == "nearest" or (layer.mode == "bilinear" and not layer.align_corners
                                             and layer.align_mode == 0))):
        return lambda x: upsample2(x, layer.mode, native)
    return None


_OPS_NAMES = ("mul", "add", "mean_hw", "upsample2", "nearest_half", "concat", "conv_chain", "conv_add")


def _install_ops():
    """oneDNN kernels behind ``networks.common.OPS`` (process-wide; each call still checks its inputs)."""
    import functools

    from networks.common import OPS, Ops

    OPS.mul = functools.partial(multiply, native=Ops.mul)
    OPS.add = functools.partial(add, native=Ops.add)
    OPS.mean_hw = functools.partial(mean_hw, native=Ops.mean_hw)
    OPS.upsample2 = lambda x, mode: upsample2(x, mode, lambda t: Ops.upsample2(t, mode))
    OPS.concat = functools.partial(concat, native=Ops.concat)
    OPS.nearest_half = functools.partial(nearest_half, native=Ops.nearest_half)
    OPS.conv_chain = functools.partial(conv_chain, native=Ops.conv_chain)
    OPS.conv_add = functools.partial(conv_add, native=Ops.conv_add)


def remove_ops():
    from networks.common import OPS

    for name in _OPS_NAMES:
        OPS.__dict__.pop(name, None)


def install(net):
    """Route ``net``'s float32 CPU dygraph calls of convolutions, activations, poolings and resizes (and the
    networks' ``OPS``) through oneDNN; returns how many layers."""
    import paddle.nn as nn

    count = 0
    for layer in net.sublayers(include_self=True):
        if "_native_forward" in layer.__dict__:
            continue
        if type(layer) is nn.Sequential:
            forward = _sequential_forward(layer)
        else:
            forward = _routed_forward(layer, layer.forward) if _routable(layer) else _layer_forward(layer)
        if forward is not None:
            layer._native_forward = layer.forward
            layer.forward = forward
            count += type(layer) is not nn.Sequential  # layers computed, not containers
    _install_ops()
    return count


def remove(net):
    """Undo ``install`` for ``net`` (and the process-wide ``OPS``)."""
    for layer in net.sublayers(include_self=True):
        if "_native_forward" in layer.__dict__:
            del layer.__dict__["forward"]
            del layer.__dict__["_native_forward"]
    remove_ops()


def available():
    """``(ok, reason)``: the library loads and its convolutions match Paddle's (forward and both gradients, on a
    small grouped, strided and dilated case) to float32 rounding; checked once per process."""
    if "ok" not in _STATE:
        try:
            _STATE["ok"], _STATE["reason"] = _self_check(), ""
        except Exception as exc:  # no library, another ABI, a mismatch: the native kernels stay
            _STATE["ok"], _STATE["reason"] = False, f"{type(exc).__name__}: {exc}".splitlines()[0]
    return _STATE["ok"], _STATE["reason"]


def _self_check():
    import paddle
    import paddle.nn.functional as F

    rng = np.random.default_rng(0)
    for shape, (o, g, s, p, d), bias in (((2, 8, 11, 13), (16, 2, 2, 1, 1), True),
                                          ((1, 3, 9, 9), (8, 1, 1, 2, 2), False)):
        x = paddle.to_tensor(rng.standard_normal(shape, dtype=np.float32), stop_gradient=False)
        w = paddle.to_tensor(rng.standard_normal((o, shape[1] // g, 3, 3), dtype=np.float32) * 0.2,
                             stop_gradient=False)
        b = paddle.to_tensor(rng.standard_normal(o, dtype=np.float32), stop_gradient=False) if bias else None
        inputs = [x, w] + ([b] if bias else [])
        ref = F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)
        dy = paddle.to_tensor(rng.standard_normal(ref.shape, dtype=np.float32))
        want = [ref] + list(paddle.grad([ref], inputs, [dy]))
        got = conv2d(x, w, b, (s, s), (p, p), (d, d), g)
        got = [got] + list(paddle.grad([got], inputs, [dy]))
        for a, c in zip(want, got):
            a, c = a.numpy(), c.numpy()
            if a.shape != c.shape or not np.allclose(a, c, rtol=1e-4, atol=1e-4 * float(np.abs(a).max())):
                raise OneDNNError("oneDNN convolution self-check: results differ from Paddle's kernels")
    return True


def onednn_plan(setting, device, amp, static_asked):
    """Whether the trainer runs its dygraph step on oneDNN kernels: ``(use, message)``; ``message`` is a line
    for the log when the setting asked for them and they cannot be used (None otherwise).

    Only on the CPU (GPUs and NPUs keep their own kernels: cuDNN, CANN), without AMP (its casts happen inside
    Paddle's own operators), and not when ``train.cpu_static: true`` asks for the static program (which has
    oneDNN kernels of its own)."""
    if device.split(":", 1)[0] != "cpu" or setting is False:
        return False, None
    if amp or static_asked:
        why = "AMP is on" if amp else "train.cpu_static: true runs the static program"
        return False, (f"train.onednn_ops: {why}, so the step uses Paddle's own kernels" if setting is True
                       else None)
    ok, reason = available()
    if not ok:
        return False, f"train.onednn_ops: oneDNN kernels unavailable ({reason}); Paddle's own kernels instead"
    return True, None
