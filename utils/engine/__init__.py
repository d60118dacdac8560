"""The training engine: the one ``Trainer`` (trainer.py), its run-config schema (schema.py) and the
deterministic iteration sampler (sampler.py)."""
from .sampler import IterationBatchSampler, SeededDataset, StagePlan, sample_seed
from .schema import DEFAULTS, MERGED, resolve_config
from .trainer import STATE_PATTERN, Trainer, mixup, train_main

__all__ = ["DEFAULTS", "MERGED", "STATE_PATTERN", "IterationBatchSampler", "SeededDataset", "StagePlan", "Trainer",
           "mixup", "resolve_config", "sample_seed", "train_main"]
