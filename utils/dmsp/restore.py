"""File-level DMSP restoration behind ``restore_dmsp.py`` and the DMSP mode of ``infer.py``: denoiser weights,
blur kernels, images, batching, synthetic degradations as in the official demos, outputs and the official PSNR
report.  The solver's options travel as one ``Settings`` value, made from either script's arguments."""
import dataclasses
import os
import time

import numpy as np

from ..errors import ImageError, UserError, WeightsError
from ..image_io import list_images, read_image, write_image

KERNEL_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TASKS = ("deblur", "sr", "demosaic")
DAE_NETWORKS = ("DAE", "DAE_BN")
DEFAULT_IMAGE_SIZE = 128  # infer.py's built-in sharp image (a crop of scikit-image's astronaut photograph)


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a DMSP restoration does (values on the 0-255 scale).  ``synthesize``: degrade sharp inputs first
    (valid blur, Gaussian noise of std ``noise``, then the SR / Bayer sampling) and score against them; group g
    synthesises with seed ``seed + 2 g`` and draws the prior's noise with ``seed + 2 g + 1``."""
    task: str = "deblur"
    scale: int = 2
    pattern: str = "RGGB"
    sigma_d: float = -1.0
    sigma_dae: float = 11.0
    num_iter: int = 300
    mu: float = 0.9
    alpha: float = 0.1
    synthesize: bool = False
    noise: float = 2.55
    seed: int = 0
    batch_size: int = 1

    def __post_init__(self):
        if self.task not in TASKS:
            raise UserError(f"unknown DMSP task {self.task!r} (one of {', '.join(TASKS)})")
        if self.num_iter < 0 or self.batch_size < 1 or self.scale < 1:
            raise UserError("--num-iter must be >= 0, --batch-size and --scale >= 1")

    @classmethod
    def from_args(cls, args, **changes):
        """The settings named by a script's parsed arguments (the fields it has), with ``changes`` on top."""
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        return cls(**{**given, **changes})


def _normalise_kernel(k, source):
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 2 or min(k.shape) < 1:
        raise UserError(f"{source}: a blur kernel must be a 2-D array, got shape {list(k.shape)}")
    if not np.all(np.isfinite(k)) or k.sum() <= 0:
        raise UserError(f"{source}: the blur kernel must be finite with a positive sum")
    return (k / k.sum()).astype(np.float32)


def _pick(items, index, source):
    if not -len(items) <= index < len(items):
        raise UserError(f"{source} holds {len(items)} kernel(s); --kernel-index {index} is out of range")
    return items[index]


def load_kernel(path, index=0):
    """A blur kernel from a ``.mat`` (a cell of kernels such as the official ``kernels.mat``, or a 2-D array),
    a ``.npy`` (2-D, or a stack [K, kh, kw]) or a grayscale image; normalised to sum 1.  None: no blur."""
    if path is None:
        return np.ones((1, 1), np.float32)
    if not os.path.isfile(path):
        raise UserError(f"kernel file not found: {path} (the official kernels.mat is at the root of "
                        "github.com/siavashBigdeli/DMSP-tensorflow; the lite data's motion blurs are "
                        "data/lite/BSDS300/kernels.npy, made by python tools/make_lite_data.py --task bsds)")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".mat":
            import scipy.io

            mat = scipy.io.loadmat(path)
            names = [k for k in mat if not k.startswith("__")]
            name = "kernels" if "kernels" in mat else (names[0] if len(names) == 1 else None)
            if name is None:
                raise UserError(f"{path}: expected a variable 'kernels' (or a single variable), found "
                                f"{', '.join(names) or 'none'}")
            value = mat[name]
            if value.dtype == object:
                value = _pick(list(value.reshape(-1)), index, path)
            return _normalise_kernel(value, path)
        if ext == ".npy":
            value = np.load(path, allow_pickle=False)
            if value.ndim == 3:
                value = _pick(list(value), index, path)
            return _normalise_kernel(value, path)
        if ext in KERNEL_IMAGE_EXTENSIONS:
            import cv2

            img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            if img is None:
                raise UserError(f"cannot read kernel image: {path}")
            return _normalise_kernel(img[..., 0] if img.ndim == 3 else img, path)
    except UserError:
        raise
    except Exception as exc:  # corrupt .mat / .npy files raise many types
        raise UserError(f"cannot read kernel file {path}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                        ) from None
    raise UserError(f"unsupported kernel file {path}: use .mat, .npy or an image")


def motion_kernel(length=9.0, angle=30.0, size=9):
    """A linear motion-blur kernel (``size`` x ``size``, sum 1): a segment of ``length`` pixels at ``angle``
    degrees through the centre, drawn with bilinear weights.  infer.py deblurs its built-in image with it."""
    c, a = (size - 1) / 2.0, np.deg2rad(angle)
    k = np.zeros((size, size), np.float64)
    for t in np.linspace(-length / 2.0, length / 2.0, 8 * int(np.ceil(length)) + 1):
        y, x = c - t * np.sin(a), c + t * np.cos(a)
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
            for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                if 0 <= yy < size and 0 <= xx < size:
                    k[yy, xx] += wy * wx
    return (k / k.sum()).astype(np.float32)


def load_dae(weights):
    """The deployable DAE from the official ``.mat``, converted ``.pdparams`` or a trained ``DAE_BN`` (folded)."""
    from networks import DAE, DAE_BN

    from ..checkpoint import build_from_weights

    if not weights or not os.path.isfile(weights):
        raise WeightsError(f"denoiser weights not found: {weights} (the official DAE_sigma11.mat of the DMSP "
                           "repositories, or its conversion by tools/convert_weights.py --arch DAE; or a lite prior "
                           "trained in minutes: python train.py -c configs/dmsp_dae_lite.yml)")
    if weights.lower().endswith(".mat"):
        import paddle

        from ..weights.official import convert_official

        net = DAE()
        net.set_state_dict({k: paddle.to_tensor(v) for k, v in convert_official("DAE", weights).items()})
        return net
    net, cfg = build_from_weights(weights)  # config.yml beside the weights, else read off the file (any DAE size)
    if cfg.get("name") not in DAE_NETWORKS:
        raise WeightsError(f"{weights} holds a {cfg.get('name')} network, not a DMSP denoiser (DAE or DAE_BN)")
    return net.fold() if isinstance(net, DAE_BN) else net


def make_denoiser(net, backend="auto"):
    """Denoiser callable: 'dygraph', 'inference' (the exported DAE under infer.py's default CPU engine) or 'auto'
    (inference on the CPU, where it is several times faster, dygraph elsewhere)."""
    import paddle

    from .solver import inference_denoiser, layer_denoiser

    if backend == "auto":
        backend = "inference" if paddle.get_device() == "cpu" else "dygraph"
    return inference_denoiser(net) if backend == "inference" else layer_denoiser(net)


def output_stems(files, output):
    """The distinct output name (without extension) of every input file, checked so that no output written into
    ``output`` (the restored image, ``<stem>_degraded.png``) replaces an input."""
    from ..deploy.restoration import output_names
    from ..fileio import check_not_inputs

    stems = [os.path.splitext(n)[0] for n in output_names([os.path.basename(p) for p in files])]
    check_not_inputs([os.path.join(output, f"{s}{tail}.png") for s in stems for tail in ("", "_degraded")], files,
                     "choose another output folder")
    return stems


def _batches(files, batch_size, crop=0, stems=None, unreadable=None):
    """Groups of up to ``batch_size`` (name, image, info) of equal (centre-cropped) size, sizes in order of
    appearance; names are ``stems`` (default: the file names without extension).  With a list ``unreadable``,
    files that cannot be read are left out and their messages appended to it."""
    def images():
        for path, stem in zip(files, stems or [os.path.splitext(os.path.basename(p))[0] for p in files]):
            try:
                yield (stem, *read_image(path, with_info=True))
            except ImageError as exc:
                if unreadable is None:
                    raise
                unreadable.append(str(exc))

    return group_images(images(), batch_size, crop)


def group_images(images, batch_size, crop=0):
    """``images``: (name, float32 RGB (3, H, W) in [0, 1], ImageInfo) -> groups of equal size, up to
    ``batch_size`` each (images of one size are restored together)."""
    groups = {}
    for name, img, info in images:
        img = _centre_crop(img, crop)
        groups.setdefault(img.shape, []).append((name, img, info))
    for items in groups.values():
        for i in range(0, len(items), batch_size):
            yield items[i:i + batch_size]


def _centre_crop(img, size):
    if not size:
        return img
    h, w = img.shape[1:]
    if size > min(h, w):
        raise ImageError(f"--crop {size} is larger than the image ({h} x {w})")
    top, left = (h - size) // 2, (w - size) // 2
    return img[:, top:top + size, left:left + size]


def observation_from_image(img, task, scale, pattern):
    """(degraded grid [3, h, w], mask or None) from a real degraded image (0-255).  SR: the low-resolution
    image's pixels land on every ``scale``-th pixel of the grid; demosaicing: the Bayer samples are taken from
    the image (a grayscale raw mosaic read as three equal channels works too)."""
    from .solver import sampling_mask

    if task == "deblur":
        return img, None
    if task == "sr":
        grid = np.zeros((3, img.shape[1] * scale, img.shape[2] * scale), np.float32)
        grid[:, ::scale, ::scale] = img
        return grid, sampling_mask(grid.shape[1:], "sr", scale)
    mask = sampling_mask(img.shape[1:], "demosaic", pattern=pattern)
    return img * mask, mask


def restore_files(inputs, weights, kernel_path, settings, output, kernel_index=0, crop=0, backend="auto", log=print):
    """Restore every image of ``inputs`` (a file, folder or glob) with the DAE ``weights`` as the prior (see
    restore_dmsp.py for the arguments); writes into ``output`` and returns the (start, restored) PSNR pairs."""
    if settings.task == "deblur" and kernel_path is None:
        raise UserError("--task deblur needs a blur kernel: --kernel kernels.mat (the official kernels), or the "
                        "lite data's data/lite/BSDS300/kernels.npy, or a .npy / image file")
    from ..deploy.restoration import raise_for_unreadable
    from ..fileio import output_dir

    kernel = load_kernel(kernel_path, kernel_index)
    files = list_images(inputs)
    stems = output_stems(files, output)
    denoiser = make_denoiser(load_dae(weights), backend)
    if getattr(denoiser, "description", None):
        log(f"DAE prior: {denoiser.description}")
    output_dir(output, "--output")
    unreadable = []
    records = restore_groups(_batches(files, settings.batch_size, crop, stems, unreadable), denoiser, kernel,
                             settings, output, log)
    raise_for_unreadable(unreadable, len(files), f"restored the other {len(files) - len(unreadable)}")
    return [(r["psnr_input"], r["psnr"]) for r in records]


def restore_groups(groups, denoiser, kernel, opts, output, log=print, timer=None, outputs=None):
    """DMSP-restore groups of equal-sized images (``group_images``) with ``denoiser`` as ``opts`` (``Settings``)
    says, and write the results into the folder ``output``.  ``timer`` (auto_log interface) is stamped after
    the degradation and after the solver; ``outputs`` (a dict), when given, receives name -> restored RGB image
    in [0, 1] (unrounded).  Returns one record per synthesised image: name, psnr_input (the starting
    estimate) and psnr (the restoration), both the official PSNR.
    """
    import paddle

    from ..fileio import output_dir
    from .solver import dmsp_restore, initial_estimate, official_psnr, synthesize

    output_dir(output)
    records, seed = [], opts.seed
    for batch in groups:
        if timer is not None:
            timer.start()
        names = [name for name, _, _ in batch]
        imgs = np.stack([img for _, img, _ in batch]) * np.float32(255.0)
        gt = None
        if opts.synthesize:
            gt = imgs
            degraded, mask = synthesize(gt, opts.task, kernel, opts.noise, opts.scale, opts.pattern, seed=seed)
        else:
            pairs = [observation_from_image(im, opts.task, opts.scale, opts.pattern) for im in imgs]
            degraded = paddle.to_tensor(np.stack([p[0] for p in pairs]))
            mask = None if pairs[0][1] is None else paddle.to_tensor(pairs[0][1])
        if timer is not None:
            timer.stamp()
        t0 = time.time()
        out = dmsp_restore(degraded, denoiser, kernel, mask, sigma_d=opts.sigma_d, sigma_dae=opts.sigma_dae,
                           num_iter=opts.num_iter, mu=opts.mu, alpha=opts.alpha, gt=gt, seed=seed + 1,
                           desc=f"DMSP {names[0]}" + (f" +{len(names) - 1}" if len(names) > 1 else ""))
        seconds = (time.time() - t0) / max(opts.num_iter, 1)
        out = out.numpy()
        if timer is not None:
            timer.stamp()
        start = initial_estimate(degraded, kernel.shape, mask).numpy() if gt is not None else None
        for i, (name, _, info) in enumerate(batch):
            write_image(os.path.join(output, f"{name}.png"), out[i] / 255.0, info)
            if outputs is not None:
                outputs[name] = out[i] / np.float32(255.0)
            if gt is None:
                log(f"{name}: restored ({seconds:.3f} s/iter)")
                continue
            obs = degraded[i].numpy()
            if opts.task == "sr":
                obs = obs[:, ::opts.scale, ::opts.scale]
            write_image(os.path.join(output, f"{name}_degraded.png"), obs / 255.0, info)
            rec = {"name": name, "psnr_input": official_psnr(start[i], gt[i], kernel.shape),
                   "psnr": official_psnr(out[i], gt[i], kernel.shape)}
            records.append(rec)
            log(f"{name}: PSNR {rec['psnr_input']:.2f} dB (start) -> {rec['psnr']:.2f} dB ({seconds:.3f} s/iter)")
        if timer is not None:
            timer.end(stamp=True)
        seed += 2
    if records:
        start, end = (np.mean([r[k] for r in records]) for k in ("psnr_input", "psnr"))
        log(f"mean over {len(records)} image(s): PSNR {start:.2f} dB (start) -> {end:.2f} dB")
    return records


# ---- infer.py's DMSP mode: the solver around the exported DAE (any runner of utils/deploy/runners.py)

def add_solver_arguments(group, kernel_help):
    """The solver's options shared by restore_dmsp.py and infer.py --dmsp-task (values on the 0-255 scale)."""
    group.add_argument("--kernel", default=None, help=kernel_help)
    group.add_argument("--kernel-index", "--kernel_index", dest="kernel_index", type=int, default=0,
                       help="kernel of a multi-kernel file (default: %(default)s)")
    group.add_argument("--scale", type=int, default=2, help="super-resolution factor (default: %(default)s)")
    group.add_argument("--pattern", default="RGGB", help="Bayer pattern for demosaicing (default: %(default)s)")
    group.add_argument("--sigma-d", "--sigma_d", dest="sigma_d", type=float, default=-1.0,
                       help="noise std of the input; <= 0 estimates it (noise-blind, default)")
    group.add_argument("--num-iter", "--num_iter", dest="num_iter", type=int, default=300)
    group.add_argument("--mu", type=float, default=0.9, help="momentum (default: %(default)s)")
    group.add_argument("--alpha", type=float, default=0.1, help="step length (default: %(default)s)")
    group.add_argument("--sigma-dae", "--sigma_dae", dest="sigma_dae", type=float, default=11.0,
                       help="noise std the denoiser was trained at (default: %(default)s)")
    return group


def add_synthesis_arguments(group):
    """Options of the synthetic degradation and the centre crop (both DMSP front ends)."""
    group.add_argument("--noise", type=float, default=2.55, help="std of the synthetic noise (default: %(default)s)")
    group.add_argument("--crop", type=int, default=0, help="centre-crop inputs to N x N first (0: whole image)")
    return group


def add_dmsp_arguments(parser):
    """infer.py's options for DMSP restoration with the exported model as the prior."""
    g = parser.add_argument_group("DMSP restoration (the exported model is a DAE prior; values on the 0-255 scale)")
    g.add_argument("--dmsp-task", "--dmsp_task", choices=TASKS, default=None,
                   help="run the DMSP solver around the exported DAE instead of one forward pass; without "
                        "--img-path the built-in sharp image is degraded first (--kernel: a built-in motion blur)")
    add_solver_arguments(g, "blur kernel (.mat, .npy or image); needed to deblur your images")
    g.add_argument("--synthesize", action="store_true", help="degrade sharp --img-path images first (PSNR)")
    add_synthesis_arguments(g)
    g.add_argument("--seed", type=int, default=0, help="synthetic noise seed; the prior's noise uses seed + 1")
    return parser


def infer_dmsp(runner, meta, device, settings, img_path=None, save_dir="output/infer", kernel_path=None,
               kernel_index=0, crop=0, benchmark=False, precision="fp32", reprod_log=None, log=print):
    """infer.py --dmsp-task: restore ``img_path`` (or the built-in image, degraded first) with the DMSP solver
    whose prior is ``runner`` (the exported DAE), as ``settings`` says; writes images, the reprod_log file of the
    restored images (RGB in [0, 1]) and PSNRs, and the auto_log report with ``benchmark``.  Returns the records."""
    from ..deploy.restoration import default_image, save_reprod_log
    from ..device import set_device
    from ..image_io import ImageInfo
    from .solver import runner_denoiser

    name = meta.get("model_name")
    if name is not None and name not in DAE_NETWORKS:
        raise UserError(f"the exported model holds a {name}; --dmsp-task needs a DMSP denoiser "
                        f"({' or '.join(DAE_NETWORKS)}): export a DAE with export_model.py")
    if not img_path:
        settings = dataclasses.replace(settings, synthesize=True)
    if kernel_path is None and settings.task == "deblur":
        if img_path:
            raise UserError("--dmsp-task deblur needs the blur kernel of the images: --kernel FILE")
        kernel = motion_kernel()
    else:
        kernel = load_kernel(kernel_path, kernel_index)
    unreadable, files = [], list_images(img_path) if img_path else []
    if img_path:
        groups = list(_batches(files, settings.batch_size, crop, output_stems(files, save_dir), unreadable))
        if not groups:
            from ..deploy.restoration import raise_for_unreadable

            raise_for_unreadable(unreadable, len(files))
    else:
        clean = default_image(DEFAULT_IMAGE_SIZE)[1]
        groups = list(group_images([("astronaut", clean, ImageInfo())], settings.batch_size, crop))
    set_device(device)
    autolog = None
    if benchmark:
        from ..deploy.benchmark_log import make_auto_logger

        autolog = make_auto_logger(model_name=f"DMSP_{settings.task}_{name or 'DAE'}", model_precision=precision,
                                   batch_size=settings.batch_size, data_shape=",".join(map(str, groups[0][0][1].shape)),
                                   save_path=None, inference_config=runner.config, pids=os.getpid(),
                                   process_name=None, gpu_ids=None, warmup=0)
    log(f"DMSP {settings.task}: {settings.num_iter} iterations, sigma_d {settings.sigma_d:g}"
        f"{' (noise-blind)' if settings.sigma_d <= 0 else ''}, kernel {kernel.shape[0]} x {kernel.shape[1]}"
        f"{'' if kernel_path or settings.task != 'deblur' else ' (built-in motion blur)'}")
    outputs = {}
    records = restore_groups(groups, runner_denoiser(runner), kernel, settings, save_dir, log,
                             autolog.times if autolog else None, outputs)
    log_path = reprod_log or os.path.join(save_dir, "inference_outputs.npy")
    save_reprod_log(log_path, outputs, records)
    log(f"restored {len(outputs)} image(s) into {save_dir}; outputs logged to {log_path}")
    if autolog:
        autolog.report()
    from ..deploy.restoration import raise_for_unreadable

    raise_for_unreadable(unreadable, len(files), f"restored the other {len(outputs)}")
    return records
