"""Make an INT8 model for CPU inference: post-training quantisation of an exported model on calibration images.

    python export_model.py --weights model_best.pdparams --save-inference-dir output/inference
    python tools/quantize.py --model-dir output/inference --calib-dir data/lite/SIDD_patches/train_mini/input \
        --save-dir output/inference_int8
    python infer.py --model-dir output/inference_int8 --precision int8 --img-path noisy.png

Calibration runs Paddle's PostTrainingQuantization (abs_max activations, per-channel weights) on up to
--calib-num images; a few images like the deployment data are enough.  The INT8 model runs under oneDNN
(fastest on CPUs with AVX512-VNNI or AMX; measure on yours with tools/benchmark.py --backends inference int8).
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    from utils.cli import ArgumentParser, folder, non_negative_int, positive_int
    from utils.deploy.quantize import ALGOS, calibration_batches, check_quantizable, quantize_int8
    from utils.image_io import list_images

    p = ArgumentParser(description=__doc__)
    p.add_argument("--model-dir", "--model_dir", default="output/inference", help="fp32 export (legacy program)")
    p.add_argument("--calib-dir", "--calib_dir", required=True, help="calibration images: file, folder or glob")
    p.add_argument("--save-dir", "--save_dir", type=folder, default="output/inference_int8", help="output folder")
    p.add_argument("--calib-num", "--calib_num", type=positive_int, default=8,
                   help="images used (default: %(default)s)")
    p.add_argument("--crop", type=non_negative_int, default=256,
                   help="centre crop of each image, 0 = whole (default: %(default)s)")
    p.add_argument("--algo", choices=ALGOS, default="abs_max", help="activation calibration (default: %(default)s)")
    args = p.parse_args(argv)
    check_quantizable(args.model_dir)  # bad input ends here, in this process, with one line
    calibration = list_images(args.calib_dir)
    batches = calibration_batches(calibration, args.crop or None, args.calib_num)
    meta = quantize_int8(args.model_dir, batches, args.save_dir, args.algo, inputs=calibration)
    print(f"quantised {meta.get('model_name', 'model')} to INT8 with {len(batches)} calibration image(s) "
          f"({args.algo}): {args.save_dir}; run it with infer.py --model-dir {args.save_dir} --precision int8")
    return meta


if __name__ == "__main__":
    sys.path.insert(0, ROOT)  # run as a script: the repository's packages
    from utils.cli import run_main

    run_main(main)
