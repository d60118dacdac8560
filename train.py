"""Train a network from a run config (any registered network; see utils/engine/schema.py for the config schema).

    python train.py -c configs/mirnet_v2_lite.yml
    python train.py -c training_1card.yml -o train.max_iters=1000 output.model_dir=runs/try1
    python train.py -c training_1card.yml --resume            # continue from the latest state
    python -m paddle.distributed.launch --gpus 0,1 train.py -c training_4cards.yml   # several cards

Outputs: output.model_dir holds model_latest.pdparams / model_best.pdparams (plain state dicts), config.yml,
train.log and the resume states; output.log_dir the VisualDL logs (visualdl --logdir DIR).
"""
from utils.cli import run_main


def main(argv=None):
    from utils.engine import train_main

    return train_main(argv, description=__doc__, script=__file__)


if __name__ == "__main__":
    run_main(main)
