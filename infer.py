"""Restore images with an exported model (export_model.py) under OpenVINO, Paddle Inference or ONNX Runtime.

    python infer.py --model-dir output/inference --img-path noisy/ --clean-dir clean/ --benchmark True
    python infer.py --model-dir output/inference --backend onnx --img-path photo.png --tile 512
    python infer.py --model-dir output/inference --device npu:0 --precision fp16    # GPU: --device gpu --use-tensorrt
    python infer.py --model-dir output/dae_inference --dmsp-task deblur --kernel kernels.mat --img-path blurry/

Without --img-path it restores a built-in test image (a noisy crop of scikit-image's astronaut photograph).
With --dmsp-task an exported DAE is the prior of the DMSP solver (no --img-path: a degraded sharp crop).
--backend auto (the default) runs the fastest engine installed that reads the export: OpenVINO, else Paddle
Inference's OpenVINO engine, else Paddle Inference with oneDNN; the first line printed says which, and why a
faster one was skipped.  --backend openvino | paddle-openvino | paddle | onnx forces one.
"""
from utils.cli import ArgumentParser, add_task_argument, folder, positive_int, run_main, str2bool


def parse_args(argv):
    from utils.deploy.accelerators import add_device_arguments
    from utils.deploy.restoration import add_tile_arguments
    from utils.deploy.runners import BACKENDS
    from utils.dmsp.restore import add_dmsp_arguments

    p = ArgumentParser(description=__doc__)
    p.add_argument("--model-dir", "--model_dir", default="output/inference", help="exported model folder")
    p.add_argument("--img-path", "--img_path", "--image_dir", "--image-dir", "--noisy-dir", "--noisy_dir",
                   dest="img_path", help="image file, folder or glob (default: the built-in test image)")
    p.add_argument("--clean-dir", "--clean_dir", "--gt", dest="gt", help="ground truth file or folder (PSNR/SSIM)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="engine (default: %(default)s)")
    add_device_arguments(p)  # --device, --use-gpu, --use-npu, --use-tensorrt, --trt-max-side
    p.add_argument("--enable-mkldnn", "--enable_mkldnn", type=str2bool, default=True, help="oneDNN on CPU")
    p.add_argument("--cpu-threads", "--cpu_threads", type=positive_int, default=None, help="CPU threads (default: all)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8", "bf16"), default="fp32",
                   help="fp16: GPU/NPU/custom devices; int8: a tools/quantize.py model (CPU); bf16: CPUs with "
                   "AMX/AVX512-BF16")
    p.add_argument("--batch-size", "--batch_size", type=positive_int, default=1)
    p.add_argument("--benchmark", type=str2bool, nargs="?", const=True, default=False,
                   help="print the auto_log timing report")
    p.add_argument("--save-dir", "--save_dir", "--output", type=folder, default="output/infer", help="restored images")
    p.add_argument("--reprod-log", "--reprod_log", help="reprod_log file of the raw outputs "
                                                        "(default: SAVE_DIR/inference_outputs.npy)")
    add_tile_arguments(p)
    add_dmsp_arguments(p)
    add_task_argument(p)
    return p.parse_args(argv)


def main(argv=None):
    from utils.deploy import inference

    args = parse_args(argv)
    runner, meta, device = inference.open_model(args)
    print(runner.description)
    if args.dmsp_task:  # the exported DAE as the prior of the DMSP solver
        return inference.restore_dmsp(args, runner, meta, device)
    return inference.restore_images(args, runner, meta)


if __name__ == "__main__":
    run_main(main)
