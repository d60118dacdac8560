"""Progressive stages and the deterministic sampler: every sample is a function of (seed, iteration).

The global sample stream visits the training set in a fresh permutation per epoch; iteration i takes the next
``batch_size`` positions of the stream (the batch size of i's stage) and card r the r-th equal slice of them.
Each sample's own random choices (crops, flips) are seeded from its stream position, so ``--resume`` and any
number of cards or workers see exactly the samples of an uninterrupted single-process run.

A sample that cannot be loaded must stop the run at once, whether it is loaded by Paddle's reader thread
(``num_workers: 0``) or by a worker process: an exception there would leave the main process waiting forever
(thread) or print tracebacks (workers).  ``SeededDataset`` therefore catches it and returns a ``SampleFailure``;
``collate`` turns a batch holding one into a failure batch (a dict, which Paddle passes through unchanged) and
``failure_of`` lets the training loop raise it in the main process, naming the file.
"""
import bisect
import random
import traceback

import numpy as np
import paddle

from ..errors import UserError


class StagePlan:
    """Stage boundaries in iterations and in samples (the global sample stream position of an iteration)."""

    def __init__(self, stages):
        self.stages = stages
        self.starts, self.sample_starts = [], []
        it = samples = 0
        for s in stages:
            self.starts.append(it)
            self.sample_starts.append(samples)
            it += s["iters"]
            samples += s["iters"] * s["batch_size"]
        self.total = it

    def index(self, i):
        return min(max(bisect.bisect_right(self.starts, i) - 1, 0), len(self.stages) - 1)

    def end(self, s):
        return self.starts[s] + self.stages[s]["iters"]

    def samples_before(self, i):
        s = self.index(i)
        return self.sample_starts[s] + (i - self.starts[s]) * self.stages[s]["batch_size"]


def sample_seed(seed, position):
    return int(np.random.SeedSequence([seed, position]).generate_state(1)[0])


class IterationBatchSampler:
    """This card's batches for iterations [start, end): items ``(index, sample_seed)``.

    The global sample stream visits the data set in a fresh permutation per epoch (``rng(seed, epoch)``);
    iteration i takes the next ``batch_size`` positions of the stream and card r the r-th equal slice of them.
    Everything is a function of (seed, iteration), whatever the number of workers or restarts."""

    def __init__(self, num_samples, seed, plan, start, end, rank=0, world_size=1):
        self.n, self.seed, self.plan = num_samples, seed, plan
        self.start, self.end, self.rank, self.world = start, end, rank, world_size
        self._epoch, self._perm = None, None

    def __len__(self):
        return self.end - self.start

    def _index(self, position):
        epoch, k = divmod(position, self.n)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return int(self._perm[k])

    def __iter__(self):
        for i in range(self.start, self.end):
            per_card = self.plan.stages[self.plan.index(i)]["batch_size"] // self.world
            first = self.plan.samples_before(i) + self.rank * per_card
            yield [(self._index(p), sample_seed(self.seed, p)) for p in range(first, first + per_card)]


class SampleFailure:
    """A sample that could not be loaded: ``message`` (the error; a traceback for bugs) and ``user`` (the error
    is a UserError, reported in one line)."""

    def __init__(self, message, user):
        self.message, self.user = message, user


FAILURE_KEY = "sample_failure"


class SeededDataset(paddle.io.Dataset):
    """``dataset[(i, seed)]``: item i with Python's and NumPy's global generators seeded by ``seed`` (restored
    afterwards), so a dataset's own random crops and flips become reproducible.  An item that raises becomes a
    ``SampleFailure`` (see the module docstring)."""

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key
        py_state, np_state = random.getstate(), np.random.get_state()
        random.seed(seed)
        np.random.seed(seed)
        try:
            return self.dataset[index]
        except UserError as exc:
            return SampleFailure(" ".join(str(exc).split()), True)
        except Exception:  # a bug: keep its traceback for the main process
            return SampleFailure(f"loading training sample {index} failed:\n{traceback.format_exc()}", False)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def collate(samples):
    """Stack (input, target) samples into a batch; a batch with a failed sample, or samples that cannot be
    stacked (images of different sizes without a patch size), becomes a failure batch."""
    failed = next((s for s in samples if isinstance(s, SampleFailure)), None)
    if failed is None:
        try:
            return [np.stack([s[i] for s in samples]) for i in range(2)]
        except ValueError as exc:
            failed = SampleFailure(f"the samples of one batch differ in size ({' '.join(str(exc).split())}); set a "
                                   "patch_size for the training set", True)
    return {FAILURE_KEY: failed.message, "user": int(failed.user), "pad": np.zeros(1, np.float32)}


def failure_of(batch):
    """The failure of a failure batch as an exception to raise (None for a real batch)."""
    if not isinstance(batch, dict) or FAILURE_KEY not in batch:
        return None
    from ..errors import DatasetError

    message = batch[FAILURE_KEY]
    return DatasetError(message) if int(batch["user"]) else RuntimeError(message)


