"""The dataset registry (``utils.registry``): data sections name a class registered here."""
from utils.registry import Registry

DATASETS = Registry("dataset", "data")
register_dataset = DATASETS.register


def build_dataset(cfg, where="data"):
    """The dataset a ``{name: <class name>, ...constructor kwargs}`` section describes."""
    return DATASETS.build(cfg, where)
