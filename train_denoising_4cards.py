"""Train MIRNetV2 for real-image denoising (SIDD) on several cards (training_4cards.yml).

    python -m paddle.distributed.launch --gpus 0,1,2,3 train_denoising_4cards.py          # NVIDIA GPUs
    python -m paddle.distributed.launch --devices 0,1,2,3 train_denoising_4cards.py       # Ascend NPUs
    python -m paddle.distributed.launch --nproc_per_node 2 train_denoising_4cards.py      # CPU processes
    python -m paddle.distributed.launch --ips 10.0.0.1,10.0.0.2 --gpus 0,1,2,3 train_denoising_4cards.py
                                        # several machines: run the same command on each one

Each stage's global batch is split evenly across the cards; gradients are averaged, so every card holds the
same weights, and only the first card writes logs and checkpoints.  With several machines, output.model_dir
must be on a shared file system for --resume.  Environment variables (NCCL / HCCL), AMP and 2-machine commands:
docs/devices.md.
"""
import os

from utils.cli import run_main

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    from utils.engine import train_main

    return train_main(argv, default_config=os.path.join(HERE, "training_4cards.yml"), description=__doc__,
                      script=__file__)


if __name__ == "__main__":
    run_main(main)
