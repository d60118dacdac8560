"""Inference benchmark report in the format of Paddle's auto_log package (used by TIPC log parsers).

``make_auto_logger(**kwargs)`` returns the real ``auto_log.AutoLogger`` when that package is importable and a
small stand-in with the same interface otherwise: ``logger.times.start()``, ``.stamp()`` after
pre-processing, ``.stamp()`` after inference, ``.end(stamp=True)`` after post-processing, then
``logger.report()``, which prints blocks of ``[date time] root INFO: key: value`` lines (Env, Paddle, Conf,
Model, Data, Perf with pre-process / inference / post-process milliseconds per batch).
"""
import logging
import os
import platform
import resource
import sys
import time

TIME_KEYS = ("preprocess_time", "inference_time", "postprocess_time")


class Times:
    """Per-stage wall-clock times of repeated runs; the first ``warmup`` runs are not counted."""

    def __init__(self, keys=TIME_KEYS, warmup=0):
        self.keys, self.warmup = list(keys), int(warmup)
        self.records = {k: [] for k in self.keys}
        self._runs, self._stamps = 0, []

    def start(self):
        self._stamps = [time.perf_counter()]

    def stamp(self):
        self._stamps.append(time.perf_counter())

    def end(self, stamp=False):
        if stamp:
            self.stamp()
        self._runs += 1
        if self._runs > self.warmup:
            for key, a, b in zip(self.keys, self._stamps, self._stamps[1:]):
                self.records[key].append(b - a)

    def count(self):
        return len(self.records[self.keys[0]])

    def mean(self, key):
        values = self.records.get(key) or [0.0]
        return sum(values) / len(values)

    def total(self):
        return sum(sum(v) for v in self.records.values())


def _config_status(config, precision):
    if config is None:
        return {"runtime_device": None, "ir_optim": None, "enable_tensorrt": None, "enable_mkldnn": None,
                "cpu_math_library_num_threads": None}
    if isinstance(config, dict):
        return {k: config.get(k) for k in ("runtime_device", "ir_optim", "enable_tensorrt", "enable_mkldnn",
                                           "cpu_math_library_num_threads")}
    return {"runtime_device": "gpu" if config.use_gpu() else "cpu", "ir_optim": config.ir_optim(),
            "enable_tensorrt": config.tensorrt_engine_enabled(), "enable_mkldnn": config.mkldnn_enabled(),
            "cpu_math_library_num_threads": config.cpu_math_library_num_threads()}


def _logger(save_path):
    log = logging.getLogger("root")
    log.setLevel(logging.INFO)
    log.propagate = False
    fmt = logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s", datefmt="%Y/%m/%d %H:%M:%S")
    for h in list(log.handlers):
        log.removeHandler(h)
    handlers = [logging.StreamHandler(sys.stdout)]
    if save_path:
        os.makedirs(os.path.dirname(os.path.abspath(save_path)), exist_ok=True)
        handlers.append(logging.FileHandler(save_path, "w"))
    for h in handlers:
        h.setFormatter(fmt)
        log.addHandler(h)
    return log


class AutoLogger:
    """Stand-in for ``auto_log.AutoLogger`` (same constructor, ``times`` and ``report``)."""

    def __init__(self, model_name, model_precision, batch_size, data_shape, save_path=None, inference_config=None,
                 pids=None, process_name=None, gpu_ids=None, time_keys=TIME_KEYS, warmup=0, **kwargs):
        self.model_name, self.precision, self.batch_size = model_name, model_precision, batch_size
        self.data_shape, self.save_path, self.gpu_ids = data_shape, save_path, gpu_ids
        self.config_status = _config_status(inference_config, model_precision)
        self.times = Times(time_keys, warmup)

    def report(self, identifier=None):
        import paddle

        tag = f"[{identifier}]" if identifier else ""
        log = _logger(self.save_path)
        rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
        cuda = paddle.version.cuda() if paddle.is_compiled_with_cuda() else None
        cudnn = paddle.version.cudnn() if paddle.is_compiled_with_cuda() else None
        c = self.config_status
        blocks = [
            ("Env info", [("OS_version", f"{platform.system()} {platform.release()}"), ("CUDA_version", cuda),
                          ("CUDNN_version", cudnn), ("drivier_version", None)]),
            ("Paddle info", [("paddle_version", paddle.__version__),
                             ("paddle_commit", getattr(paddle, "__git_commit__", None)), ("log_api_version", 1.0)]),
            ("Conf info", [("runtime_device", c["runtime_device"]), ("ir_optim", c["ir_optim"]),
                           ("enable_memory_optim", True), ("enable_tensorrt", c["enable_tensorrt"]),
                           ("enable_mkldnn", c["enable_mkldnn"]),
                           ("cpu_math_library_num_threads", c["cpu_math_library_num_threads"])]),
            ("Model info", [("model_name", self.model_name), ("precision", self.precision)]),
            ("Data info", [("batch_size", self.batch_size), ("input_shape", self.data_shape),
                           ("data_num", self.times.count())]),
        ]
        log.info("\n")
        for title, items in blocks:
            log.info(f"{'-' * 22} {title} {'-' * 22}")
            for key, value in items:
                log.info(f"{tag} {key}: {value}")
        t = {k: round(self.times.mean(k) * 1000, 4) for k in TIME_KEYS}
        log.info(f"{'-' * 22} Perf info {'-' * 22}")
        log.info(f"{tag} cpu_rss(MB): {rss_mb}, gpu_rss(MB): None, gpu_util: None%")
        log.info(f"{tag} total time spent(s): {round(self.times.total(), 4)}")
        log.info(f"{tag} preprocess_time(ms): {t['preprocess_time']}, inference_time(ms): {t['inference_time']}, "
                 f"postprocess_time(ms): {t['postprocess_time']}")


def make_auto_logger(**kwargs):
    """The real auto_log.AutoLogger when installed, else the stand-in above."""
    try:
        import auto_log
    except ImportError:
        return AutoLogger(**kwargs)
    return auto_log.AutoLogger(**kwargs)
