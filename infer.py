"""Restore images with an exported model (export_model.py) under Paddle Inference or ONNX Runtime.

    python infer.py --model-dir output/inference --img-path noisy/ --clean-dir clean/ --benchmark True
    python infer.py --model-dir output/inference --backend onnx --img-path photo.png --tile 512
    python infer.py --model-dir output/inference --device npu:0 --precision fp16    # GPU: --device gpu --use-tensorrt
    python infer.py --model-dir output/dae_inference --dmsp-task deblur --kernel kernels.mat --img-path blurry/

Without --img-path it restores a built-in test image (a noisy crop of scikit-image's astronaut photograph).
With --dmsp-task an exported DAE is the prior of the DMSP solver (no --img-path: a degraded sharp crop).
The Paddle configuration follows the files in --model-dir: inference.pdmodel runs the fast oneDNN
configuration, inference.json the safe PIR one; the first line printed says which.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from utils.cli import quiet_paddle, run_main  # noqa: E402

quiet_paddle()
from utils import inference as inf  # noqa: E402
from utils.benchmark_log import make_auto_logger  # noqa: E402
from utils.dmsp_restore import add_dmsp_arguments, infer_dmsp  # noqa: E402
from utils.inference_devices import add_device_arguments, tensorrt_options  # noqa: E402
from utils.restoration import array_item, collect_items, restore_items, summary_lines  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", "--model_dir", default="output/inference", help="exported model folder")
    p.add_argument("--img-path", "--img_path", "--image_dir", "--image-dir", "--noisy-dir", "--noisy_dir",
                   dest="img_path", help="image file, folder or glob (default: the built-in test image)")
    p.add_argument("--clean-dir", "--clean_dir", "--gt", dest="gt", help="ground truth file or folder (PSNR/SSIM)")
    p.add_argument("--backend", choices=("paddle", "onnx"), default="paddle")
    add_device_arguments(p)  # --device, --use-gpu, --use-npu, --use-tensorrt, --trt-max-side
    p.add_argument("--enable-mkldnn", "--enable_mkldnn", type=inf.str2bool, default=True, help="oneDNN on CPU")
    p.add_argument("--cpu-threads", "--cpu_threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8", "bf16"), default="fp32",
                   help="fp16: GPU/NPU/custom devices; int8: a tools/quantize.py model (CPU); bf16: CPUs with "
                   "AMX/AVX512-BF16")
    p.add_argument("--batch-size", "--batch_size", type=int, default=1)
    p.add_argument("--benchmark", type=inf.str2bool, nargs="?", const=True, default=False,
                   help="print the auto_log timing report")
    p.add_argument("--save-dir", "--save_dir", "--output", default="output/infer", help="restored images")
    p.add_argument("--reprod-log", "--reprod_log", help="reprod_log file of the raw outputs "
                                                        "(default: SAVE_DIR/inference_outputs.npy)")
    inf.add_tile_arguments(p)
    add_dmsp_arguments(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = inf.infer_device(args.device, args.use_gpu, args.use_npu)
    runner = inf.make_runner(args.backend, args.model_dir, device, args.cpu_threads, args.enable_mkldnn,
                             args.precision, tensorrt_options(args))
    print(runner.description)
    meta = inf.read_meta(args.model_dir if os.path.isdir(args.model_dir) else os.path.dirname(args.model_dir))
    if args.dmsp_task:  # the exported DAE as the prior of the DMSP solver
        return infer_dmsp(args, runner, meta, device)
    if args.img_path:
        items = collect_items(args.img_path, args.gt)
    else:
        items = [array_item("astronaut_noisy.png", *inf.default_image())]
    plan = inf.tile_plan(args, runner.size_multiple, meta)
    timer = None
    if args.benchmark:
        img = items[0].load()[0]
        inf.restore(runner, img, plan)  # warm-up: oneDNN creates its primitives on the first run
        autolog = make_auto_logger(model_name=meta.get("model_name", "model"), model_precision=args.precision,
                                   batch_size=args.batch_size, data_shape=",".join(map(str, img.shape)),
                                   save_path=None, inference_config=runner.config, pids=os.getpid(),
                                   process_name=None, gpu_ids=None, warmup=0)
        timer = autolog.times
    records, outputs = restore_items(runner, items, args.save_dir, args.batch_size, plan, timer=timer,
                                     keep_outputs=True)
    for line in summary_lines(records):
        print(line)
    log_path = args.reprod_log or os.path.join(args.save_dir, "inference_outputs.npy")
    inf.save_reprod_log(log_path, outputs, records)
    print(f"restored {len(records)} image(s) into {args.save_dir}; outputs logged to {log_path}")
    if args.benchmark:
        autolog.report()
    return records


if __name__ == "__main__":
    run_main(main)
