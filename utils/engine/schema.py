"""The run config of the training engine: its schema, defaults and checks (``resolve_config``).

Schema (every section is checked; unknown keys are refused, missing ones take the defaults below):

    name: ''                      # free text, shown in the logs
    seed: 100                     # model init, data order, crops, mixup (all derived from it)
    device: auto                  # auto | cpu | gpu[:id] | npu[:id]; the --device flag wins
    network: {name: MIRNet_v2, ...constructor kwargs}          # networks.build_network
    data:
      train: {type: PairedImageDataset, ...kwargs}            # dataloaders.build_dataset (a training set)
      val: {type: ..., ...} | null                             # whole-image validation set; null: no validation
      num_workers: 0              # DataLoader worker processes per card
    train:
      stages:                     # progressive learning, run in order
        - {iters: 92000, batch_size: 64, patch_size: 128, micro_batch: null}
          # batch_size is GLOBAL (all cards together; must divide by the number of cards).  micro_batch (per
          # card, optional) splits each card's share into chunks whose gradients are accumulated, so the
          # update equals one step on the whole global batch.  patch_size null keeps the dataset's own size.
      max_iters: null             # stop early after this many iterations (the schedule is unchanged)
      max_minutes: null           # stop early (validate, save) once this much wall-clock time has passed
      loss: {type: L1Loss}                                     # utils.losses.build_loss
      optimizer: {type: Adam, lr: 2e-4, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0}
                                  # Adam | AdamW (same keys) | SGD (lr, momentum, nesterov, weight_decay)
      scheduler: {type: ConstantLR}                            # utils.schedulers (by iteration)
      grad_clip: null             # clip gradients to this global L2 norm (MIRNetV2: 0.01)
      ema_decay: 0                # > 0 keeps an exponential moving average of the weights (used for
                                  # validation and written as model_latest / model_best)
      mixup: {enable: false, beta: 1.2, use_identity: true}    # official "mixing_augs"; use_identity: on half
                                                               # of the iterations only
      amp: {enable: false, level: O1, dtype: float16, init_loss_scaling: 1024}   # GPU / NPU; utils/amp.py
      onednn_ops: auto            # CPU, without AMP: the dygraph step's convolutions, activations, poolings,
                                  # resizes and broadcasting products on the oneDNN kernels of Paddle's own
                                  # library (utils/engine/onednn.py; same values, same keys), and Adam as one
                                  # merged kernel (utils/schedulers.py); auto = true where the library loads
                                  # and passes its self-check; false: Paddle's kernels
      cpu_static: auto            # CPU only, without AMP: true runs the network and the loss as one static
                                  # program with oneDNN kernels instead (backward and optimizer in dygraph;
                                  # Paddle 3.3.x; utils/engine/cpu_static.py); auto = true for MIMOUNet when
                                  # onednn_ops cannot be used; false: the dygraph step.
                                  # GPUs and NPUs always keep their own dygraph step.
    val:
      freq: 1000                  # validate every N iterations and at the end
      metric: psnr                # psnr | ssim: which one picks model_best
      log_images: 2               # input | output | target triplets sent to VisualDL and val_images/
    output:
      model_dir: checkpoints/<network name>/model   # model_latest/model_best.pdparams, config.yml, train.log,
                                                    # state_iter*.pdstates (resume states)
      log_dir: checkpoints/<network name>/logs      # VisualDL; null with a model_dir given: <model_dir>/vdl
      checkpoint_freq: 1000       # resume state + model_latest every N iterations (and at the end)
      keep_last: 3                # resume states kept (the best weights are kept apart)
      overwrite: false            # a fresh run (no --resume) into a model_dir that holds an earlier run's
                                  # files (model_best / model_latest.pdparams, train.log, config.yml, resume
                                  # states, the VisualDL log) is refused; true deletes them and starts anew
    log:
      print_freq: 10              # one TIPC-style line every N iterations
      progress_bar: true          # tqdm bars (rank 0, when stderr is a terminal)
      visualdl: true
      figures: true               # rank 0 writes curves.png (loss, validation PSNR) and val_images/ (input |
                                  # restored | ground truth of val.log_images images) at every validation

Sections that name a registered class (network, data.train, data.val, train.loss, train.optimizer,
train.scheduler) pick it with ``name``; the ``type`` of older configs is read with a deprecation notice and
written back as ``name``.
"""
import copy
import os

from ..amp import check_amp_config
from ..config import check_keys
from ..errors import ConfigError
from ..registry import normalise
from ..schedulers import check_optimizer

DEFAULTS = {
    "name": "", "seed": 100, "device": "auto", "network": None,
    "data": {"train": None, "val": None, "num_workers": 0},
    "train": {"stages": None, "max_iters": None, "max_minutes": None, "loss": {"name": "L1Loss"},
              "optimizer": {"name": "Adam", "lr": 2e-4}, "scheduler": {"name": "ConstantLR"}, "grad_clip": None,
              "ema_decay": 0.0, "cpu_static": "auto", "onednn_ops": "auto",
              "mixup": {"enable": False, "beta": 1.2, "use_identity": True},
              "amp": {"enable": False, "level": "O1", "dtype": "float16", "init_loss_scaling": 1024.0}},
    "val": {"freq": 1000, "metric": "psnr", "log_images": 2},
    "output": {"model_dir": None, "log_dir": None, "checkpoint_freq": 1000, "keep_last": 3, "overwrite": False},
    "log": {"print_freq": 10, "progress_bar": True, "visualdl": True, "figures": True},
}
MERGED = {"data", "train", "train.mixup", "train.amp", "val", "output", "log"}  # sections filled from DEFAULTS
STAGE_KEYS = ("iters", "batch_size", "patch_size", "micro_batch")
REGISTRY_SECTIONS = (("data", "train"), ("data", "val"), ("train", "loss"), ("train", "optimizer"),
                     ("train", "scheduler"))


def _merge(defaults, given, where):
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ConfigError(f"{where or 'the config'} must be a mapping, got {type(given).__name__}")
    check_keys(given, defaults, where or "the config's top level")
    out = {}
    for key, default in defaults.items():
        path = f"{where}.{key}" if where else key
        value = given.get(key, copy.deepcopy(default))
        out[key] = _merge(default, value, path) if path in MERGED else value
    return out


def _positive_int(value, where, allow_none=False):
    if allow_none and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} must be a positive integer{' or null' if allow_none else ''}, got {value!r}")
    return value


def resolve_config(cfg):
    """Check every section of a run config and fill in the defaults; returns a new dict."""
    cfg = _merge(DEFAULTS, cfg, "")
    for key in ("network",):
        if not isinstance(cfg[key], dict) or "name" not in cfg[key]:
            raise ConfigError("the config needs a 'network' section with a 'name'")
    if not isinstance(cfg["data"]["train"], dict):
        raise ConfigError("the config needs a 'data.train' dataset section")
    for section, key in REGISTRY_SECTIONS:
        if cfg[section][key] is not None:
            cfg[section][key] = normalise(cfg[section][key], f"{section}.{key}")
    train = cfg["train"]
    if not isinstance(train["stages"], list) or not train["stages"]:
        raise ConfigError("train.stages must be a non-empty list of {iters, batch_size, patch_size}")
    for k, stage in enumerate(train["stages"]):
        where = f"train.stages.{k}"
        if not isinstance(stage, dict):
            raise ConfigError(f"{where} must be a mapping with iters, batch_size, patch_size")
        check_keys(stage, STAGE_KEYS, where)
        stage.setdefault("patch_size", None)
        stage.setdefault("micro_batch", None)
        for key in ("iters", "batch_size"):
            _positive_int(stage.get(key), f"{where}.{key}")
        for key in ("patch_size", "micro_batch"):
            _positive_int(stage[key], f"{where}.{key}", allow_none=True)
    _positive_int(train["max_iters"], "train.max_iters", allow_none=True)
    if train["max_minutes"] is not None and (not isinstance(train["max_minutes"], (int, float))
                                             or train["max_minutes"] <= 0):
        raise ConfigError(f"train.max_minutes must be a positive number or null, got {train['max_minutes']!r}")
    check_optimizer(train["optimizer"])
    train["amp"] = check_amp_config(train["amp"])
    if not (train["cpu_static"] == "auto" or isinstance(train["cpu_static"], bool)):
        raise ConfigError(f"train.cpu_static must be auto, true or false, got {train['cpu_static']!r}")
    if not (train["onednn_ops"] == "auto" or isinstance(train["onednn_ops"], bool)):
        raise ConfigError(f"train.onednn_ops must be auto, true or false, got {train['onednn_ops']!r}")
    if not 0 <= float(train["ema_decay"]) < 1:
        raise ConfigError(f"train.ema_decay must be in [0, 1), got {train['ema_decay']}")
    if cfg["val"]["metric"] not in ("psnr", "ssim"):
        raise ConfigError(f"val.metric must be psnr or ssim, got {cfg['val']['metric']!r}")
    for where, key in (("val", "freq"), ("output", "checkpoint_freq"), ("output", "keep_last"),
                       ("log", "print_freq")):
        _positive_int(cfg[where][key], f"{where}.{key}")
    if not isinstance(cfg["seed"], int) or cfg["seed"] < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {cfg['seed']!r}")
    out, net_name = cfg["output"], cfg["network"]["name"]
    if not isinstance(out["overwrite"], bool):
        raise ConfigError(f"output.overwrite must be true or false, got {out['overwrite']!r}")
    for key in ("model_dir", "log_dir"):
        if out[key] is not None and (not isinstance(out[key], str) or not out[key].strip()):
            raise ConfigError(f"output.{key} must be a folder path or null, got {out[key]!r}")
    if not out["log_dir"]:
        out["log_dir"] = os.path.join(out["model_dir"], "vdl") if out["model_dir"] else \
            os.path.join("checkpoints", net_name, "logs")
    out["model_dir"] = out["model_dir"] or os.path.join("checkpoints", net_name, "model")
    return cfg


