"""The training engine: one ``Trainer`` for every network, driven by the run config (``schema.py``).

Data order, crops and mixup are functions of (seed, iteration) (``sampler.py``), so ``--resume`` continues
exactly like an uninterrupted run.  On several cards (``python -m paddle.distributed.launch``) each card takes
its slice of the global batch, gradients are averaged by DataParallel, validation is split across cards, and
only rank 0 writes logs and files.

What a run does when something goes wrong:
- a fresh run into a folder holding an earlier run is refused (``--resume``, another ``output.model_dir``, or
  ``output.overwrite: true``); temporaries left by a killed process are removed when the folder is opened again;
- the validation set is read once before the first iteration; a training sample that cannot be read ends the
  run at once in the main process (``sampler.SeededDataset``), with any number of workers;
- a failure in the middle of the run (data, validation) first saves a resume state, and says so;
- Ctrl-C says which state the run can resume from and the command, on the console and in train.log;
- on several cards the failing card posts its error line to the others (``RankFailures``), so the line the
  user sees is that card's own, not a collective timeout of another card, and every card exits non-zero.
"""
import contextlib
import datetime
import glob
import inspect
import logging
import math
import os
import random
import re
import signal
import sys
import time

import numpy as np
import paddle
from paddle.base.unique_name import UniqueNameGenerator

from dataloaders import build_dataset
from networks import build_network, to_network_space

from ..amp import amp_plan
from ..checkpoint import save_weights
from ..config import ConfigError, dump_config
from ..device import device_type, is_custom, set_device
from ..errors import DatasetError, UserError
from ..fileio import atomic_paddle_save, atomic_write_text, inside, output_dir
from ..losses import build_loss
from ..schedulers import build_optimizer, build_scheduler
from .cpu_static import StaticTrainStep, cpu_static_plan, error_summary
from .onednn import install as install_onednn
from .onednn import interrupts_unwrapped, onednn_plan
from .sampler import IterationBatchSampler, SeededDataset, StagePlan, collate, failure_of
from .schema import resolve_config

STATE_PATTERN = "state_iter*.pdstates"
LOGGER = "engine"
RUN_FILES = ("model_best.pdparams", "model_latest.pdparams", "train.log", "config.yml")  # besides the states
VDL_FILE = "vdlrecords.train.log"


# ---------------------------------------------------------------------------------------------------------------
# Mixup and helpers
# ---------------------------------------------------------------------------------------------------------------

def mixup(inp, target, rng, beta, use_identity):
    """Official MIRNetV2 mixing: with ``use_identity`` the batch is left alone on half of the iterations;
    otherwise both images are blended with a shuffled copy of the batch, weight ~ Beta(beta, beta)."""
    if use_identity and rng.integers(0, 2) == 1:
        return inp, target
    lam = float(rng.beta(beta, beta))
    perm = paddle.to_tensor(rng.permutation(inp.shape[0]))
    return (lam * inp + (1 - lam) * paddle.gather(inp, perm),
            lam * target + (1 - lam) * paddle.gather(target, perm))


def _as_float32(out):
    if isinstance(out, (list, tuple)):
        return [_as_float32(o) for o in out]
    return out.astype("float32") if out.dtype != paddle.float32 else out


def _set_state(layer, state):
    """set_state_dict, casting saved float32 tensors to the layer's dtypes (float16 / bfloat16 under AMP O2)."""
    own = layer.state_dict()
    layer.set_state_dict({k: v.astype(own[k].dtype) if k in own and isinstance(v, paddle.Tensor)
                          and v.dtype != own[k].dtype else v for k, v in state.items()})


def _last_line(exc):
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return re.sub(r"^\w*Error: ", "", text)


class _TqdmHandler(logging.Handler):
    def emit(self, record):
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stdout)
        except Exception:  # logging must never break training
            self.handleError(record)


def _world():
    return paddle.distributed.get_world_size(), paddle.distributed.get_rank()


def _amp_dtype_supported(dtype, device):
    """bfloat16 needs compute capability 8.0+ on NVIDIA GPUs; other devices are left to their plugin."""
    if device_type(device) != "gpu" or dtype != "bfloat16":
        return True
    return bool(paddle.amp.is_bfloat16_supported(device))


# ---------------------------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------------------------

def _shut_down(batches):
    """Stop the worker processes of a data-loader iterator now.  Its reader thread keeps the iterator alive after
    the loop over it ends (a break or an error), so without this its workers would outlive ``fit`` and hold
    inherited file descriptors of the process."""
    shutdown = getattr(batches, "_try_shutdown_all", None)  # Paddle's iterators (workers only when num_workers > 0)
    if shutdown is not None:  # a worker that does not stop within 5 s is left to the process's exit handler
        shutdown(*([5] if "timeout" in inspect.signature(shutdown).parameters else []))


class Trainer:
    """Builds everything a run needs from ``cfg`` and trains with ``fit()``.

    ``resume``: None (fresh run), 'auto' (the latest resume state in ``output.model_dir``) or a state file
    path.  ``record_history`` keeps per-iteration ``{iter, loss, lr, shape}`` in ``self.history``.
    ``resume_command``: the command line that continues this run (told on Ctrl-C and after a failure);
    ``failures``: a ``RankFailures`` that watches the other cards once the parallel environment is up."""

    def __init__(self, cfg, device=None, resume=None, record_history=False, resume_command=None, failures=None):
        self.cfg = resolve_config(cfg)
        cfg = self.cfg
        self.world, self.rank = _world()
        self.model_dir, self.log_dir = cfg["output"]["model_dir"], cfg["output"]["log_dir"]
        self.resume_command, self.failures = resume_command, failures
        self._check_outputs_outside_data()
        state_path = self.find_state(resume) if resume else None
        elsewhere = state_path and os.path.realpath(os.path.dirname(state_path)) != os.path.realpath(self.model_dir)
        earlier = self.earlier_run() if not resume or elsewhere else []  # a state from another folder: a new run here
        self._replace = bool(earlier)  # with output.overwrite: the earlier run's files go when the run starts
        if earlier and not cfg["output"]["overwrite"]:
            more = f" and {len(earlier) - 3} more" if len(earlier) > 3 else ""
            vdl = os.path.join(self.log_dir, VDL_FILE) in earlier
            where = (f"output.log_dir {self.log_dir}" if len(earlier) == 1 and vdl else self.model_dir)
            raise UserError(f"{where} holds an earlier run ({', '.join(earlier[:3])}{more}): continue it with "
                            f"--resume auto, train into another output.model_dir{' and output.log_dir' if vdl else ''}"
                            f", or set output.overwrite=true to replace it")
        self.device = set_device(device or cfg["device"])
        if self.world > 1:
            paddle.distributed.init_parallel_env()
            if failures is not None:
                failures.watch()
        self.log = self._make_logger()
        self.plan = StagePlan(cfg["train"]["stages"])
        for k, stage in enumerate(self.plan.stages):
            if stage["batch_size"] % self.world:
                raise ConfigError(f"train.stages.{k}.batch_size {stage['batch_size']} is not divisible by the "
                                  f"{self.world} cards")
        self.end_iter = min(self.plan.total, cfg["train"]["max_iters"] or self.plan.total)
        self.seed = cfg["seed"]
        random.seed(self.seed)
        np.random.seed(self.seed)
        paddle.seed(self.seed)
        # Fixed parameter and optimizer-state names, so resume states match in any process.
        self._names = UniqueNameGenerator()
        with paddle.utils.unique_name.guard(self._names):
            self.net = self._build_network()
            self.ema_net = self._build_network() if cfg["train"]["ema_decay"] > 0 else None
        if self.ema_net is not None:
            self.ema_net.set_state_dict(self.net.state_dict())
            self.ema_net.eval()
        self.loss_fn = build_loss(cfg["train"]["loss"])
        self.train_set = self._build_dataset("train")
        self.val_set = self._build_dataset("val") if cfg["data"]["val"] else None
        if self.val_set is not None:
            self._check_val_set()
        opt_cfg = cfg["train"]["optimizer"]
        self.scheduler = build_scheduler(cfg["train"]["scheduler"], opt_cfg["lr"])
        self.optimizer = self._build_optimizer()
        self._setup_amp()
        self.static_step = self._setup_cpu_step()
        forward = self.static_step if self.static_step is not None else self.net
        self.model = paddle.DataParallel(forward) if self.world > 1 else forward
        self.iter, self.best, self.history = 0, None, [] if record_history else None
        self.curves = {"loss": [], "val": []}  # [(iteration, value)] for curves.png, kept in the resume state
        self._figures = bool(cfg["log"]["figures"])
        self._input_metrics, self._writer, self._file_log, self._saved_at = None, None, None, None
        if state_path:
            self.load_state(state_path)
            self._saved_at = self.iter
        if self.rank == 0:  # writable folders (made now), without temporaries of killed processes
            output_dir(self.model_dir, "output.model_dir")
            if self.cfg["log"]["visualdl"]:
                output_dir(self.log_dir, "output.log_dir")

    # -- construction helpers -----------------------------------------------------------------------------------
    def _check_outputs_outside_data(self):
        """The run's output folders may not be a data set's folder or lie inside one: checkpoints, logs and
        figures would sit among (and be listed with) the images the data set reads."""
        for option, out in (("output.model_dir", self.model_dir), ("output.log_dir", self.log_dir)):
            if not out:
                continue
            for split in ("train", "val"):
                root = (self.cfg["data"].get(split) or {}).get("root")
                if root and inside(out, root):
                    raise UserError(f"{option} {out} is inside data.{split}.root {root}: give an output folder "
                                    "outside the data sets")

    def _build_network(self):
        return build_network(self.cfg["network"])

    def _build_optimizer(self, merged=False):
        train = self.cfg["train"]
        return build_optimizer(train["optimizer"], self.net.parameters(), self.scheduler, train["grad_clip"],
                               merged=merged)

    def _build_dataset(self, split):
        try:
            return build_dataset(self.cfg["data"][split], f"data.{split}")
        except DatasetError as exc:
            raise DatasetError(f"data.{split}: {exc}") from None

    def _check_val_set(self):
        """Read every validation image of this card once (files readable, pairs of one size) before the first
        iteration, so that a bad file stops the run now and not at the first validation."""
        for i in range(self.rank, len(self.val_set), self.world):
            try:
                inp, target = self.val_set[i]
            except UserError as exc:
                raise DatasetError(f"data.val: {' '.join(str(exc).split())}") from None
            if np.shape(inp) != np.shape(target):
                name = (getattr(self.val_set, "names", None) or [f"item {i}"])[i]
                raise DatasetError(f"data.val: input and target of {name} differ in size: {np.shape(inp)} vs "
                                   f"{np.shape(target)}")

    def earlier_run(self):
        """Names of an earlier run's files in the output folders (what a fresh run would replace)."""
        found = [os.path.basename(p) for p in self.list_states()]
        found += [f for f in RUN_FILES if os.path.isfile(os.path.join(self.model_dir, f))]
        if self.cfg["log"]["visualdl"] and os.path.isfile(os.path.join(self.log_dir, VDL_FILE)):
            found.append(os.path.join(self.log_dir, VDL_FILE))
        return found

    def _setup_amp(self):
        """utils/amp.py: O2 casts the weights and keeps float32 master weights; float16 gets a dynamic scaler."""
        plan = amp_plan(self.cfg["train"]["amp"], self.device, _amp_dtype_supported)
        self.amp, self.scaler = plan["enable"], None
        if plan["warning"]:
            self.log.warning(plan["warning"])
        if plan["decorate"]:
            self.net, self.optimizer = paddle.amp.decorate(models=self.net, optimizers=self.optimizer, level="O2",
                                                           dtype=plan["dtype"], master_weight=plan["master_weight"],
                                                           save_dtype="float32")
        if plan["scaler"]:
            self.scaler = paddle.amp.GradScaler(init_loss_scaling=plan["init_loss_scaling"],
                                                use_dynamic_loss_scaling=True)

    def _setup_cpu_step(self):
        """The CPU training step: dygraph with oneDNN kernels (onednn.py, ``train.onednn_ops``), or the static
        program (cpu_static.py, ``train.cpu_static``), or plain dygraph; GPUs and NPUs keep their own step.
        ``self._step_notes`` keeps the lines that say why a step asked for is not used, for the run's log
        (train.log opens later).  Returns the static step or None."""
        train = self.cfg["train"]
        self._step_notes, self.onednn_layers = [], 0
        ops, note = onednn_plan(train["onednn_ops"], self.device, self.amp, train["cpu_static"] is True)
        self._step_notes += [note] if note else []
        if ops:  # and Adam's update as one merged kernel (utils/schedulers.py: merged_adam)
            self.optimizer = self._build_optimizer(merged=True)
            self.onednn_layers = install_onednn(self.net)
            if self.ema_net is not None:
                install_onednn(self.ema_net)
            return None
        use, note = cpu_static_plan(train["cpu_static"], self.cfg["network"]["name"], self.device, self.amp)
        self._step_notes += [note] if note else []
        if not use:
            return None
        try:
            return StaticTrainStep(self.net, self.loss_fn, self.log.warning)
        except Exception as exc:  # noqa: BLE001 -- a Paddle that lacks what it hooks: the dygraph step
            self._step_notes.append(f"train.cpu_static: the static CPU step cannot be set up ({type(exc).__name__}: "
                                    f"{error_summary(exc)[:200]}); training in dygraph")
            return None

    def _autocast(self, level=None):
        amp = self.cfg["train"]["amp"]
        if not self.amp:
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(enable=True, level=level or amp["level"], dtype=amp["dtype"])

    def _make_logger(self):
        log = logging.getLogger(f"{LOGGER}.{id(self)}")
        for old in list(log.handlers):  # a logger left by an earlier trainer object at the same address
            log.removeHandler(old)
        log.propagate = False
        log.setLevel(logging.INFO if self.rank == 0 else logging.WARNING)
        handler = _TqdmHandler() if self.rank == 0 else logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s" if self.rank == 0 else
                                               f"[rank {self.rank}] %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        log.addHandler(handler)
        return log

    def _open_outputs(self, fresh):
        """Rank 0: output folders, log file, config.yml, VisualDL writer."""
        if self.rank != 0:
            return
        os.makedirs(self.model_dir, exist_ok=True)
        fresh = fresh or self._replace
        if self._replace:  # an earlier run's files (output.overwrite): the new run must not mix with them
            for old in self.list_states() + [os.path.join(self.model_dir, f) for f in RUN_FILES[:2]]:
                if os.path.isfile(old):
                    os.remove(old)
        self._file_log = logging.FileHandler(os.path.join(self.model_dir, "train.log"), mode="w" if fresh else "a",
                                             encoding="utf-8")
        self._file_log.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%Y-%m-%d %H:%M:%S"))
        self.log.addHandler(self._file_log)
        atomic_write_text(os.path.join(self.model_dir, "config.yml"), dump_config(self.cfg))
        if self.cfg["log"]["visualdl"]:
            from visualdl import LogWriter

            path = os.path.join(self.log_dir, VDL_FILE)
            if fresh and os.path.exists(path):
                os.remove(path)
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):  # VisualDL prints on append
                self._writer = LogWriter(logdir=self.log_dir, file_name=os.path.basename(path))

    def _close_outputs(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._file_log is not None:
            self.log.removeHandler(self._file_log)
            self._file_log.close()
            self._file_log = None

    def _show_bars(self):
        """Progress bars on rank 0 when asked for and stderr is a terminal (log files get the log lines)."""
        return self.rank == 0 and bool(self.cfg["log"]["progress_bar"]) and sys.stderr.isatty()

    def _scalar(self, tag, value, step):
        if self._writer is not None:
            self._writer.add_scalar(tag=tag, value=float(value), step=int(step))

    # -- training -----------------------------------------------------------------------------------------------
    def _stage_loader(self, s, start):
        stage = self.plan.stages[s]
        if stage["patch_size"] and hasattr(self.train_set, "set_patch_size"):
            self.train_set.set_patch_size(stage["patch_size"])
        end = min(self.plan.end(s), self.end_iter)
        sampler = IterationBatchSampler(len(self.train_set), self.seed, self.plan, start, end, self.rank, self.world)
        workers = int(self.cfg["data"]["num_workers"])
        per_card = stage["batch_size"] // self.world
        micro = min(stage["micro_batch"] or per_card, per_card)
        self.log.info(f"stage {s + 1}/{len(self.plan.stages)} from iteration {start}: patch "
                      f"{stage['patch_size'] or 'as stored'}, global batch {stage['batch_size']} ({per_card} per card "
                      f"x {self.world} card(s), micro-batches of {micro}), {end - start} iteration(s)")
        return paddle.io.DataLoader(SeededDataset(self.train_set), batch_sampler=sampler, num_workers=workers,
                                    use_shared_memory=workers > 0, collate_fn=collate)

    def _batches(self):
        """(input, target) for every remaining iteration, stage by stage; a sample that cannot be loaded raises
        here, in the main process (DatasetError naming the file; a bug's traceback as RuntimeError)."""
        while self.iter < self.end_iter:
            s = self.plan.index(self.iter)
            batches = iter(self._stage_loader(s, self.iter))
            try:
                for batch in batches:
                    failure = failure_of(batch)
                    if failure is not None:
                        raise failure
                    yield batch
            except DatasetError as exc:
                raise DatasetError(f"data.train: {_last_line(exc)}") from None
            finally:
                _shut_down(batches)

    def train_step(self, inp, target):
        """One optimizer step on this card's share of the global batch; returns the (local) loss."""
        stage = self.plan.stages[self.plan.index(self.iter)]
        self.scheduler.step(self.iter)
        mix = self.cfg["train"]["mixup"]
        if mix["enable"]:
            rng = np.random.default_rng([self.seed, self.iter, self.rank, 1])
            inp, target = mixup(inp, target, rng, float(mix["beta"]), bool(mix["use_identity"]))
        n = inp.shape[0]
        micro = min(stage["micro_batch"] or n, n)
        chunks = [(k, min(k + micro, n)) for k in range(0, n, micro)]
        self.model.train()
        try:
            total = self._accumulate_gradients(inp, target, chunks)
        except Exception as exc:  # noqa: BLE001 -- the static CPU step failed: this step again in dygraph
            if self.static_step is None or not self.static_step.active:
                raise
            self.static_step.disable(exc)
            self.optimizer.clear_grad()
            total = self._accumulate_gradients(inp, target, chunks)
        if not math.isfinite(total):
            if not self.scaler:  # with float16 AMP the scaler skips this step and lowers its scale
                raise UserError(f"the loss became {total} at iteration {self.iter + 1}; lower the learning rate or "
                                f"set train.grad_clip")
            self.log.warning(f"non-finite loss at iteration {self.iter + 1} under float16 AMP; step skipped")
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.clear_grad()
        self._update_ema()
        return total

    def _accumulate_gradients(self, inp, target, chunks):
        """Forward and backward of every micro-batch ``chunks`` = [(start, end)] of the batch; returns the loss."""
        n, total = inp.shape[0], 0.0
        pairs = [(to_network_space(inp[a:b], self.net), to_network_space(target[a:b], self.net)) for a, b in chunks]
        if self.static_step is not None:
            self.static_step.prepare(pairs)
        for c, ((a, b), (x, y)) in enumerate(zip(chunks, pairs)):
            sync = self.world == 1 or c == len(chunks) - 1
            with (contextlib.nullcontext() if sync else self.model.no_sync()):
                if self.static_step is not None:  # network + loss in one call (cpu_static.py)
                    loss = self.model(x, y)
                else:
                    with self._autocast():
                        pred = self.model(x)
                    loss = self.loss_fn(_as_float32(pred), y)
                scaled = loss * ((b - a) / n)
                with interrupts_unwrapped():
                    (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total += loss.item() * (b - a) / n
        return total

    @paddle.no_grad()
    def _update_ema(self):
        if self.ema_net is None:
            return
        d = float(self.cfg["train"]["ema_decay"])
        for p_ema, p in zip(self.ema_net.parameters(), self.net.parameters()):
            p_ema.set_value(p_ema * d + p.astype(p_ema.dtype) * (1 - d))
        for b_ema, b in zip(self.ema_net.buffers(), self.net.buffers()):
            b_ema.set_value(b.astype(b_ema.dtype))

    def _collective_dtype(self):
        """float64 for the logged sums, except on custom devices: HCCL (Ascend) reduces no float64."""
        return np.float32 if is_custom(self.device) else np.float64

    def _reduce(self, values):
        """Sum a list of floats over cards."""
        if self.world == 1:
            return list(values)
        t = paddle.to_tensor(np.asarray(values, dtype=self._collective_dtype()))
        paddle.distributed.all_reduce(t)
        return t.numpy().tolist()

    def fit(self):
        """Train to the end of the schedule (or ``train.max_iters``); returns the last validation metrics."""
        from tqdm import tqdm

        fresh = self.iter == 0
        self._open_outputs(fresh)
        cfg, metrics, bar, batches = self.cfg, None, None, self._batches()
        self._phase = "data"  # what the run is doing: data, step, validate or checkpoint
        try:
            with paddle.utils.unique_name.guard(self._names):
                self._log_start()
                bar = tqdm(total=self.end_iter, initial=self.iter, unit="it", dynamic_ncols=True,
                           disable=not self._show_bars())
                window = dict.fromkeys(("loss", "n", "reader", "batch", "samples"), 0.0)
                t_begin = t_data = time.perf_counter()
                for inp, target in batches:
                    self._phase = "step"
                    t_start = time.perf_counter()
                    shape = tuple(inp.shape)
                    loss = self.train_step(inp, target)
                    lr = self.scheduler()
                    self.iter += 1
                    for key, value in (("loss", loss), ("n", 1), ("reader", t_start - t_data),
                                       ("batch", time.perf_counter() - t_data),
                                       ("samples", self.plan.stages[self.plan.index(self.iter - 1)]["batch_size"])):
                        window[key] += value
                    if self.history is not None:
                        self.history.append({"iter": self.iter, "loss": loss, "lr": lr, "shape": shape})
                    bar.update()
                    if self.iter % cfg["log"]["print_freq"] == 0 or self.iter == self.end_iter:
                        self._log_window(window, lr)
                        window = dict.fromkeys(window, 0.0)
                        self._check_time_budget(t_begin)
                    last = self.iter >= self.end_iter
                    if self.val_set is not None and (self.iter % cfg["val"]["freq"] == 0 or last):
                        self._phase = "validate"
                        metrics = self.validate()
                    if self.iter % cfg["output"]["checkpoint_freq"] == 0 or last:
                        self._phase = "checkpoint"
                        self.save_checkpoint()
                    if last:
                        break
                    self._phase = "data"
                    t_data = time.perf_counter()
                bar.close()
                if self.failures is not None:
                    self.failures.stop()
                self._check_replicas()
                self._log_end()
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
            message = f"at iteration {self.iter}: {self._how_to_continue()}"
            self._log_to_file(f"interrupted {message}")
            raise KeyboardInterrupt(message) from None
        except Exception as exc:
            if bar is not None:
                bar.close()
            self._after_failure(exc)
            raise
        finally:
            batches.close()  # the data loader's worker processes end with the run, however it ends
            self._close_outputs()
        return metrics

    # -- when a run stops early --------------------------------------------------------------------------------
    def _log_to_file(self, line):
        """A line in train.log only (the console gets it once, from the command's own error or interrupt line)."""
        if self._file_log is not None:
            self._file_log.emit(logging.LogRecord(self.log.name, logging.WARNING, __file__, 0, line, None, None))
            self._file_log.flush()

    def _how_to_continue(self):
        """Which resume state this run can continue from, and the command that does it."""
        base = self.resume_command or "the same command"
        states = self.list_states()
        if states:
            state = os.path.basename(states[-1])
            it = int(re.search(r"(\d+)\.pdstates$", state).group(1))
            return f"resume from {state} (iteration {it}) with: {base} --resume"
        return (f"no resume state was saved yet (the first comes at iteration {self.cfg['output']['checkpoint_freq']}"
                f"); start again with: {base} -o output.overwrite=true")

    def _after_failure(self, exc):
        """A failure while reading data or validating: save a resume state first (rank 0, when the weights of
        this iteration are not saved yet), say how to continue, in train.log and in the error line."""
        note = None
        if self._phase in ("data", "validate") and self.rank == 0 and self.iter > 0 and self._saved_at != self.iter:
            try:
                self.save_checkpoint()
                note = "saved a resume state first; "
            except Exception:  # the original failure is what the user must see
                note = None
        note = (note or "") + self._how_to_continue()
        self._log_to_file(f"stopped at iteration {self.iter}: {_last_line(exc)}; {note}")
        if isinstance(exc, UserError):
            exc.args = (f"{' '.join(str(exc).split())}; {note}",)

    def _check_time_budget(self, t_begin):
        """Stop early (validating and saving as at the end) once ``train.max_minutes`` have passed; the
        decision uses the time averaged over cards, so every card stops at the same iteration."""
        budget = self.cfg["train"]["max_minutes"]
        if budget and self.iter < self.end_iter:
            elapsed = self._reduce([time.perf_counter() - t_begin])[0] / self.world
            if elapsed >= budget * 60:
                self.log.info(f"time budget of {budget} minute(s) reached at iteration {self.iter}; stopping here "
                              f"(--resume continues the schedule)")
                self.end_iter = self.iter

    def _log_end(self):
        """The last lines: the best score against the unrestored input's, and where to look."""
        line = f"finished at iteration {self.iter}"
        if self.best:
            key = self.best["metric"]
            line += f"; best {key} {self.best['value']:.4f} at iteration {self.best['iter']}"
            start = (self._input_metrics or {}).get(key)
            if start is not None:
                unit = " dB" if key == "psnr" else ""
                line += f" (input {start:.4f}{unit}: {self.best['value'] - start:+.2f}{unit})"
        self.log.info(line)
        if self.rank != 0:
            return
        curves, folder = self.figure_paths()
        if self._figures and os.path.isfile(curves):
            shown = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
            self.log.info(f"figures: {curves} (loss and validation PSNR)"
                          + (f", {os.path.join(folder, shown[0])} (input | restored | ground truth"
                             + (f"; {len(shown)} in {folder}" if len(shown) > 1 else "") + ")" if shown else ""))
        if self.cfg["log"]["visualdl"]:
            self.log.info(f"VisualDL: visualdl --logdir {self.log_dir} --language en --disable-telemetry")

    def _log_start(self):
        n_params = sum(int(np.prod(p.shape)) for p in self.net.parameters())
        verb = "starting" if self.iter == 0 else f"resuming at iteration {self.iter}"
        self.log.info(f"{verb}: {self.cfg['network']['name']} ({n_params:,} parameters) on {self.device} x "
                      f"{self.world}, {len(self.train_set)} training pairs"
                      + (f", {len(self.val_set)} validation images" if self.val_set is not None else "")
                      + f", {self.end_iter} iterations; outputs in {self.model_dir} and {self.log_dir}")
        for note in self._step_notes:
            self.log.warning(note)
        if self.static_step is not None and self.static_step.active:
            self.log.info("training step: network and loss as a static program with oneDNN kernels "
                          "(train.cpu_static: false for the dygraph step)")
        if self.onednn_layers:
            merged = ", Adam as one merged kernel" if getattr(self.optimizer, "_use_multi_tensor", False) else ""
            self.log.info(f"training step: dygraph, {self.onednn_layers} layers on oneDNN kernels{merged} "
                          "(train.onednn_ops: false for Paddle's own)")

    def _log_window(self, w, lr):
        loss = self._reduce([w["loss"]])[0] / self.world
        n = max(w["n"], 1)
        batch_cost = w["batch"] / n
        ips = w["samples"] / w["batch"] if w["batch"] > 0 else 0.0
        eta = datetime.timedelta(seconds=int(batch_cost * (self.end_iter - self.iter)))
        self.log.info(f"iter: {self.iter}/{self.end_iter}, lr: {lr:.6f}, loss: {loss / n:.4f}, "
                      f"avg_reader_cost: {w['reader'] / n:.4f} sec, avg_batch_cost: {batch_cost:.4f} sec, "
                      f"avg_samples: {w['samples'] / n:.1f}, avg_ips: {ips:.1f} images/sec, eta: {eta}")
        self._scalar("train/loss", loss / n, self.iter)
        self.curves["loss"].append((self.iter, loss / n))
        self._scalar("train/lr", lr, self.iter)
        self._scalar("train/ips", ips, self.iter)

    # -- validation -----------------------------------------------------------------------------------------------
    def validate(self):
        """PSNR / SSIM (data range 1, output clamped to [0, 1]) over the validation set, split across cards, with
        the one restoration loop (utils/deploy/restoration.py); saves model_best when the chosen metric improves.
        Returns {'psnr': ..., 'ssim': ...}."""
        from ..deploy.restoration import dataset_items, restore_items
        from ..deploy.runners import DygraphRunner
        from ..deploy.tiling import TilePlan

        net = self.ema_net if self.ema_net is not None else self.net
        need_input = self._input_metrics is None
        names = ("psnr", "ssim") + (("psnr_input", "ssim_input") if need_input else ())
        indices = list(range(self.rank, len(self.val_set), self.world))
        images = []

        def keep_images(rec, inp, out, target):
            if self.rank == 0 and len(images) < self.cfg["val"]["log_images"]:
                images.append((indices[len(images)], rec["name"], inp, np.clip(out, 0, 1), target, rec["psnr"]))

        # O1 autocast also suits the float32 EMA copy
        runner = DygraphRunner(net, context=lambda: self._autocast(level="O1"))
        records = restore_items(runner, dataset_items(self.val_set, indices), plan=TilePlan(tile=0),
                                progress=self._show_bars(), metrics=names, on_result=keep_images, desc="validation")
        net.train()
        sums = self._reduce([sum(r[m] for r in records) for m in names] + [len(records)])
        count = max(sums[-1], 1)
        means = dict(zip(names, (v / count for v in sums)))
        metrics = {"psnr": means["psnr"], "ssim": means["ssim"]}
        if need_input:
            self._input_metrics = {"psnr": means["psnr_input"], "ssim": means["ssim_input"]}
            self.log.info(f"validation input (no restoration): psnr {self._input_metrics['psnr']:.4f} dB, "
                          f"ssim {self._input_metrics['ssim']:.4f}")
        key = self.cfg["val"]["metric"]
        improved = self.best is None or metrics[key] > self.best["value"]
        if improved:
            self.best = {"metric": key, "value": metrics[key], "iter": self.iter}
        self.log.info(f"validation at iteration {self.iter}: psnr {metrics['psnr']:.4f} dB, ssim {metrics['ssim']:.4f}"
                      f" ({int(count)} images){'  [best]' if improved else ''}")
        self.curves["val"].append((self.iter, metrics["psnr"]))
        if self.rank == 0:
            self._scalar("val/psnr", metrics["psnr"], self.iter)
            self._scalar("val/ssim", metrics["ssim"], self.iter)
            if self._writer is not None:
                for i, _, inp, out, target, _ in images:
                    hwc = np.concatenate([inp, out, target], axis=2).transpose(1, 2, 0)
                    self._writer.add_image(tag=f"val/{i:04d}_input_output_target",
                                           img=np.round(np.clip(hwc, 0, 1) * 255).astype(np.uint8), step=self.iter)
            if improved:
                save_weights(self.eval_state_dict(), os.path.join(self.model_dir, "model_best.pdparams"))
            self._write_figures(images)
        return metrics

    def figure_paths(self):
        """(curves.png, the folder of the validation comparisons) in ``output.model_dir``."""
        return os.path.join(self.model_dir, "curves.png"), os.path.join(self.model_dir, "val_images")

    def _write_figures(self, images):
        """Rank 0, at every validation: curves.png beside train.log and one input | restored | ground truth
        picture per logged validation image (overwritten, so they always show the latest weights)."""
        if not self._figures:
            return
        try:
            from ..figures import plot_curves, write_comparison
        except ImportError as exc:  # matplotlib missing: training goes on without pictures
            self.log.warning(f"no figures: {exc} (pip install matplotlib)")
            self._figures = False
            return
        from ..metrics import psnr

        curves, folder = self.figure_paths()
        plot_curves(curves, self.curves["loss"], self.curves["val"], (self._input_metrics or {}).get("psnr"),
                    title=f"{self.cfg['name'] or self.cfg['network']['name']}: iteration {self.iter}")
        for _, name, inp, out, target, value in images:
            write_comparison(os.path.join(folder, os.path.splitext(os.path.basename(name))[0] + ".png"), inp, out,
                             target, psnr(inp, target), value)

    # -- checkpoints --------------------------------------------------------------------------------------------
    def eval_state_dict(self):
        """The weights to deploy: the EMA weights when EMA is on, else the trained ones."""
        return (self.ema_net if self.ema_net is not None else self.net).state_dict()

    def list_states(self):
        found = []
        for path in glob.glob(os.path.join(self.model_dir, STATE_PATTERN)):
            m = re.search(r"state_iter(\d+)\.pdstates$", path)
            if m:
                found.append((int(m.group(1)), path))
        return [p for _, p in sorted(found)]

    def find_state(self, resume):
        if resume == "auto":
            states = self.list_states()
            if not states:
                raise UserError(f"--resume auto: no resume state ({STATE_PATTERN}) in {self.model_dir}")
            return states[-1]
        path = resume
        if os.path.isdir(path):
            found = sorted(glob.glob(os.path.join(path, STATE_PATTERN)))
            if not found:
                raise UserError(f"--resume: no resume state ({STATE_PATTERN}) in {path}")
            path = max(found, key=lambda p: int(re.search(r"(\d+)\.pdstates$", p).group(1)))
        if not os.path.isfile(path):
            raise UserError(f"--resume: file not found: {path}")
        return path

    def save_checkpoint(self):
        """Rank 0: the resume state (atomic), then model_latest.pdparams; keeps the last ``keep_last`` states."""
        if self.rank != 0:
            return
        state = {
            "iteration": self.iter, "stage": self.plan.index(max(self.iter - 1, 0)), "world_size": self.world,
            "model": self.net.state_dict(), "ema": self.ema_net.state_dict() if self.ema_net is not None else None,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None, "best": self.best,
            "input_metrics": self._input_metrics, "curves": self.curves,
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "paddle": paddle.get_rng_state()},
            "config": self.cfg,
        }
        path = os.path.join(self.model_dir, f"state_iter{self.iter:08d}.pdstates")
        atomic_paddle_save(state, path)
        self._saved_at = self.iter
        save_weights(self.eval_state_dict(), os.path.join(self.model_dir, "model_latest.pdparams"))
        for old in self.list_states()[:-self.cfg["output"]["keep_last"]]:
            os.remove(old)
        self.log.info(f"saved {path} and model_latest.pdparams")

    def load_state(self, path):
        from ..checkpoint import file_kind, why_unreadable

        if file_kind(path) in ("empty", "official"):
            raise UserError(f"--resume: {why_unreadable(path, what='resume state')}")
        try:
            state = paddle.load(path)
        except Exception as exc:  # paddle raises many types for damaged files
            raise UserError(f"--resume: {why_unreadable(path, exc, 'resume state')}; an earlier state may be "
                            f"complete: pass it with --resume PATH") from None
        if not isinstance(state, dict) or "iteration" not in state:
            raise UserError(f"{path} is not a resume state written by this trainer")
        with paddle.utils.unique_name.guard(self._names):
            _set_state(self.net, state["model"])
            if self.ema_net is not None:
                _set_state(self.ema_net, state["ema"] if state.get("ema") else state["model"])
            self.optimizer.set_state_dict(state["optimizer"])
        self.scheduler.set_state_dict(state["scheduler"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iter, self.best = int(state["iteration"]), state.get("best")
        self._input_metrics = state.get("input_metrics")
        self.curves = state.get("curves") or {"loss": [], "val": []}
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        paddle.set_rng_state(rng["paddle"])
        strip = lambda c: {**c, "train": {k: v for k, v in c["train"].items()  # noqa: E731
                                          if k not in ("max_iters", "max_minutes", "cpu_static")}}
        saved, now = strip(state["config"]), strip(self.cfg)
        changed = [k for k in ("network", "train", "seed") if saved.get(k) != now.get(k)]
        if changed:
            self.log.warning(f"resuming with a different {', '.join(changed)} than the saved run; the continuation "
                             f"will not match an uninterrupted run")
        if state.get("world_size") != self.world:
            self.log.warning(f"the saved run used {state.get('world_size')} card(s), this one {self.world}")
        self.log.info(f"loaded resume state {path} (iteration {self.iter})")

    def _check_replicas(self):
        """Several cards: confirm that every card ends with the same weights (per-tensor sums and norms)."""
        if self.world == 1:
            return
        stats = []
        for p in self.net.parameters():
            v = p.numpy().astype(np.float64).ravel()
            stats += [v.sum(), (v * v).sum(), (v * np.arange(1, v.size + 1) / v.size).sum()]
        local = paddle.to_tensor(np.asarray(stats, dtype=self._collective_dtype()))
        gathered = []
        paddle.distributed.all_gather(gathered, local)
        diff = max(float(np.abs(g.numpy() - gathered[0].numpy()).max()) for g in gathered)
        if diff == 0:
            self.log.info(f"replica check: identical weights on all {self.world} cards")
        else:
            self.log.warning(f"replica check: weights differ across cards (max statistic difference {diff:.3g})")


# ---------------------------------------------------------------------------------------------------------------
# Command line shared by train.py and the train_denoising_* scripts
# ---------------------------------------------------------------------------------------------------------------

class RankFailures:
    """Several cards: the card that fails posts its error line to the key-value store of the launch (the one
    ``init_parallel_env`` opened), and every other card, wherever it waits (a collective blocks until the launcher
    kills it), prints that line as its own error and exits with status 2 (``watch``).  A card that fails because a
    peer is gone (a collective that times out or loses its connection) reports the peer's line, or the lost
    connection, instead of a traceback (``explain``).  Without a store (one card) nothing happens."""

    KEY = "run_failure"
    LOST = ("gloo", "connection", "timeout", "closed by peer", "broken pipe")

    def __init__(self, world, rank):
        import threading

        self.world, self.rank, self.lock = world, rank, threading.Lock()
        self.stopped = threading.Event()

    @staticmethod
    def _store():
        try:
            from paddle.distributed import collective

            return getattr(collective, "_default_store", None)
        except ImportError:
            return None

    def post(self, message):
        store = self._store()
        if store is None:
            return
        try:
            with self.lock:
                store.set(f"{self.KEY}/{self.rank}", message)
                store.add(f"{self.KEY}/{self.rank}/posted", 1)
        except Exception:  # the store is gone with rank 0: nothing to tell
            pass

    def find(self, wait=0.0):
        """(rank, message) of another card's posted failure, waiting up to ``wait`` seconds; None if none, or
        when the store is gone (rank 0 ended)."""
        store, deadline = self._store(), time.time() + wait
        while store is not None:
            try:
                with self.lock:
                    if self.stopped.is_set():
                        return None
                    for r in range(self.world):
                        if r != self.rank and store.add(f"{self.KEY}/{r}/posted", 0) > 0:
                            return r, store.get(f"{self.KEY}/{r}").decode("utf-8", "replace")
            except Exception:
                self.stopped.set()
                return None
            if time.time() >= deadline:
                return None
            time.sleep(0.2)
        return None

    def watch(self, interval=0.25):
        """Start a thread that ends this process (status 2, the failing card's line) once another card posts."""
        import threading

        if self.world < 2 or self._store() is None:
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the launcher's stop ends a waiting card without a dump

        def loop():
            while not self.stopped.is_set():
                found = self.find()
                if found is not None:
                    print(f"error: card {found[0]} of {self.world} stopped: {found[1]}", file=sys.stderr, flush=True)
                    os._exit(2)
                self.stopped.wait(interval)

        threading.Thread(target=loop, name="rank-failures", daemon=True).start()

    def stop(self):
        """End the watch, with no call to the store in flight (before the run's last collective: after it, rank 0
        may end, and its store with it)."""
        self.stopped.set()
        with self.lock:
            pass

    def explain(self, exc, wait=10.0):
        """Re-raise ``exc`` of this card: its own UserError after posting it; for any other failure, the error line
        a peer posted (a UserError naming that card) or a lost connection in one line, else ``exc`` itself."""
        if isinstance(exc, UserError):
            # the others print it first (the launcher stops them once this card has exited); the launcher's stop
            # must not cut this card's own line short: it exits right after printing it
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self.post(" ".join(str(exc).split()))
            time.sleep(1.0)
            raise exc
        found = self.find(wait)
        if found is not None:
            raise UserError(f"card {found[0]} of {self.world} stopped: {found[1]}") from None
        if any(word in str(exc).lower() for word in self.LOST):
            raise UserError(f"card {self.rank} lost the connection to the other cards ({_last_line(exc)[:120]}): one "
                            "of them stopped; its error is at the end of its log (workerlog.N in the launch's "
                            "--log_dir)") from None
        raise exc


def command_line(script, argv):
    """The command that reruns ``script`` with ``argv`` minus any --resume (and its value), shell-quoted."""
    import shlex

    args, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == "--resume":  # as argparse reads it: the next word is its value unless it is an option
            skip = i + 1 < len(argv) and not argv[i + 1].startswith("-")
            continue
        if a.startswith("--resume="):
            continue
        args.append(a)
    launch = "python -m paddle.distributed.launch <your launch options> " if _world()[0] > 1 else "python "
    rel = os.path.relpath(script)
    return launch + " ".join(shlex.quote(a) for a in [rel if not rel.startswith("..") else script] + args)


def train_main(argv=None, default_config=None, description=None, script=None):
    """Parse ``-c CONFIG [-o key=value ...] [--resume auto|PATH] [--device ...]`` and train.  ``script`` (the entry
    script's path) makes the resume command told on Ctrl-C and after failures."""
    from ..cli import ArgumentParser, add_device_argument
    from ..config import load_config

    p = ArgumentParser(description=description)
    p.add_argument("-c", "--config", default=default_config, required=default_config is None,
                   help="run config (YAML)" + (" (default: %(default)s)" if default_config else ""))
    p.add_argument("-o", "--override", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. -o train.max_iters=100 output.model_dir=runs/a")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="auto|PATH",
                   help="continue a run: 'auto' (the default) takes the latest state in output.model_dir, or give a "
                        "state_iter*.pdstates file or a folder")
    add_device_argument(p, default=None)
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.override)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = command_line(script or sys.argv[0], argv)
    failures = RankFailures(*_world())
    try:
        trainer = Trainer(cfg, device=args.device, resume=args.resume, resume_command=command, failures=failures)
        return trainer.fit()
    except Exception as exc:
        if failures.world > 1:
            failures.explain(exc)
        raise
