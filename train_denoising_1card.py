"""Train MIRNetV2 for real-image denoising (SIDD) on one card with the official recipe (training_1card.yml).

    python generate_patches_SIDD.py --src data/SIDD_Medium_Srgb --dst data/SIDD_patches/train
    python train_denoising_1card.py [-o key=value ...] [--resume] [--device gpu:0]

The global batch of the official 8-GPU run is kept through gradient accumulation, so the result matches the
official schedule; see the comments in training_1card.yml for shorter variants.
"""
import os

from utils.cli import run_main

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    from utils.engine import train_main

    return train_main(argv, default_config=os.path.join(HERE, "training_1card.yml"), description=__doc__,
                      script=__file__)


if __name__ == "__main__":
    run_main(main)
