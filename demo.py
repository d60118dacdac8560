"""A local web page to try the models: drop an image, pick the model / task, see the input and the result side by
side (with the PSNR when a reference is given), download the result.

    python demo.py --weights checkpoints/Denoising/model/MIRNet_V2_quick/model_best.pdparams
    python demo.py --model-dir output/inference --weights MIMOUNet_GoPro.pdparams DAE_sigma11.mat
    python demo.py --weights output/dae_lite.pdparams --kernel data/lite/BSDS300/kernels.npy --port 8080

--weights takes checkpoints or training folders (MIRNetV2, MIMO-UNet, DMSP's DAE, also the official .mat);
--model-dir exported models (export_model.py).  A DAE offers DMSP deblurring, super-resolution and demosaicing.
Large images are restored tile by tile.  The page runs offline (pip install -r requirements-demo.txt) and
listens on 127.0.0.1 unless --host says otherwise; results are also written under --output.
"""
import argparse

from utils.cli import add_device_argument, run_main


def main(argv=None):
    from utils.deploy.demo import Demo, open_choices, serve
    from utils.deploy.restoration import tile_arg

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", nargs="+", action="extend", default=[], metavar="W",
                   help="checkpoints (.pdparams, training folders, DAE_sigma11.mat)")
    p.add_argument("--model-dir", "--model_dir", nargs="+", action="extend", default=[], dest="model_dirs",
                   metavar="DIR", help="exported model folders (export_model.py)")
    p.add_argument("--kernel", help="blur kernel for DMSP deblurring (.mat, .npy or image; default: a built-in "
                                    "motion blur), e.g. data/lite/BSDS300/kernels.npy")
    p.add_argument("--kernel-index", "--kernel_index", type=int, default=0, help="kernel of a multi-kernel file")
    p.add_argument("--tile", type=tile_arg, default="auto",
                   help="tile size for the networks: auto = 512-pixel tiles above 1 megapixel (default: %(default)s)")
    p.add_argument("--output", default="results/demo", help="where results are written (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=7860, help="(default: %(default)s)")
    add_device_argument(p)
    args = p.parse_args(argv)
    choices = open_choices(args.weights, args.model_dirs, args.device)
    demo = Demo(choices, args.output, args.tile or "auto", args.kernel, args.kernel_index)
    print(f"demo: {len(choices)} model / task choice(s): {'; '.join(demo.labels)}")
    serve(demo, args.host, args.port)


if __name__ == "__main__":
    run_main(main)
