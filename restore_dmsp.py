"""DMSP restoration with the deep mean-shift prior: (noise-blind) deblurring, super-resolution, demosaicing.

    python restore_dmsp.py --input 101085.jpg --synthesize --kernel kernels.mat --weights DAE_sigma11.mat
    python restore_dmsp.py --input blurry/ --kernel kernel.png --sigma-d -1 --output results/dmsp
    python restore_dmsp.py --task sr --scale 2 --input low_res.png --weights DAE_sigma11.pdparams

Values are on the 0-255 scale.  --synthesize degrades sharp images as the official demos do (valid blur,
Gaussian noise of std --noise, then the SR / Bayer sampling) and reports PSNR with the official border crop.
The Ascend TF port's flags (--data_url --num_iter --denoiser --sigma_dae --batch_size) are accepted too.
"""
import os
import sys

from utils.cli import ArgumentParser, add_device_argument, folder, positive_int, run_main


def parse_args(argv=None):
    from utils.dmsp.restore import add_solver_arguments, add_synthesis_arguments

    p = ArgumentParser(description=__doc__)
    p.add_argument("--input", "--data_url", dest="input", required=True, help="image file, folder or glob")
    p.add_argument("--task", default="deblur", choices=["deblur", "sr", "demosaic"])
    add_solver_arguments(p, "blur kernel: .mat (e.g. kernels.mat), .npy or image; required for deblurring, "
                            "none (no blur) by default for sr / demosaic")
    p.add_argument("--weights", "--denoiser", dest="weights", default="pretrained_models/DAE_sigma11.pdparams",
                   help="DAE weights: converted .pdparams, a trained DAE_BN checkpoint or the official "
                        "DAE_sigma11.mat (default: %(default)s)")
    p.add_argument("--output", type=folder, default="results/dmsp", help="output folder (default: %(default)s)")
    p.add_argument("--synthesize", action="store_true", help="degrade sharp inputs first, then report PSNR")
    add_synthesis_arguments(p)
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=positive_int, default=1,
                   help="images of equal size restored together (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic and the prior's noise")
    p.add_argument("--backend", default="auto", choices=["auto", "dygraph", "inference"],
                   help="how the DAE runs: auto = exported, under infer.py's default engine on the CPU; dygraph "
                        "elsewhere")
    add_device_argument(p)
    return p.parse_args(argv)


def main(argv=None):
    from utils.device import set_device
    from utils.dmsp.restore import Settings, output_stems, restore_files
    from utils.fileio import output_dir
    from utils.image_io import list_images

    args = parse_args(argv)
    settings = Settings.from_args(args)
    set_device(args.device)
    output_stems(list_images(args.input), args.output)  # refused before anything is written, the log too
    output_dir(args.output, "--output")
    with open(os.path.join(args.output, "restore_dmsp.log"), "a", encoding="utf-8") as log_file:
        def log(line):
            print(line, flush=True)
            log_file.write(line + "\n")

        log(f"restore_dmsp: {' '.join(sys.argv[1:] if argv is None else argv)}")
        restore_files(args.input, args.weights, args.kernel, settings, args.output, args.kernel_index, args.crop,
                      args.backend, log)
        log(f"results written to {args.output}: the restored images (NAME.png)"
            + (", the degraded inputs (NAME_degraded.png)" if args.synthesize else "") + " and restore_dmsp.log")


if __name__ == "__main__":
    run_main(main)
