"""File-level DMSP restoration behind ``restore_dmsp.py``: denoiser weights, blur kernels, images, batching,
synthetic degradations as in the official demos, outputs and the official PSNR report."""
import os
import time

import numpy as np

from .cli import UserError
from .image_io import ImageError, list_images, read_image, write_image

KERNEL_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


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
        raise UserError(f"kernel file not found: {path}")
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


def load_dae(weights):
    """The deployable DAE from the official ``.mat``, converted ``.pdparams`` or a trained ``DAE_BN`` (folded)."""
    from networks import DAE, DAE_BN, build_network
    from .checkpoint import WeightsError, load_weights, network_config_for

    if not weights or not os.path.isfile(weights):
        raise WeightsError(f"denoiser weights not found: {weights} (the official DAE_sigma11.mat of the DMSP "
                           "repositories, or its conversion by tools/convert_weights.py --arch DAE)")
    if weights.lower().endswith(".mat"):
        import paddle

        from .official_weights import convert_official

        net = DAE()
        net.set_state_dict({k: paddle.to_tensor(v) for k, v in convert_official("DAE", weights).items()})
        return net
    cfg = network_config_for(weights)
    if cfg.get("name") not in ("DAE", "DAE_BN"):
        raise WeightsError(f"{weights} holds a {cfg.get('name')} network, not a DMSP denoiser (DAE or DAE_BN)")
    net = load_weights(build_network(cfg), weights)
    return net.fold() if isinstance(net, DAE_BN) else net


def make_denoiser(net, backend="auto"):
    """Denoiser callable: 'dygraph', 'inference' (Paddle Inference, oneDNN on the CPU) or 'auto' (inference on
    the CPU, where it is several times faster, dygraph elsewhere)."""
    import paddle

    from .dmsp import inference_denoiser, layer_denoiser

    if backend == "auto":
        backend = "inference" if paddle.get_device() == "cpu" else "dygraph"
    return inference_denoiser(net) if backend == "inference" else layer_denoiser(net)


def _batches(files, batch_size, crop=0):
    """Groups of up to ``batch_size`` (centre-cropped) images of equal size, sizes in order of appearance."""
    groups = {}
    for path in files:
        img, info = read_image(path, with_info=True)
        img = _centre_crop(img, crop)
        groups.setdefault(img.shape, []).append((path, img, info))
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
    from .dmsp import sampling_mask

    if task == "deblur":
        return img, None
    if task == "sr":
        grid = np.zeros((3, img.shape[1] * scale, img.shape[2] * scale), np.float32)
        grid[:, ::scale, ::scale] = img
        return grid, sampling_mask(grid.shape[1:], "sr", scale)
    mask = sampling_mask(img.shape[1:], "demosaic", pattern=pattern)
    return img * mask, mask


def run(args, log=print):
    """Restore every image of ``args.input`` (see restore_dmsp.py for the arguments); returns the PSNR pairs."""
    import paddle

    from .dmsp import dmsp_restore, initial_estimate, official_psnr, synthesize

    if args.num_iter < 0 or args.batch_size < 1 or args.scale < 1:
        raise UserError("--num-iter must be >= 0, --batch-size and --scale >= 1")
    if args.task == "deblur" and args.kernel is None:
        raise UserError("--task deblur needs a blur kernel: --kernel kernels.mat (the official kernels) or a "
                        ".npy / image file")
    kernel = load_kernel(args.kernel, args.kernel_index)
    files = list_images(args.input)
    denoiser = make_denoiser(load_dae(args.weights), args.backend)
    os.makedirs(args.output, exist_ok=True)
    scores, seed = [], args.seed
    for batch in _batches(files, args.batch_size, args.crop):
        names = [os.path.splitext(os.path.basename(p))[0] for p, _, _ in batch]
        imgs = np.stack([img for _, img, _ in batch]) * np.float32(255.0)
        gt = None
        if args.synthesize:
            gt = imgs
            degraded, mask = synthesize(gt, args.task, kernel, args.noise, args.scale, args.pattern, seed=seed)
        else:
            pairs = [observation_from_image(im, args.task, args.scale, args.pattern) for im in imgs]
            degraded = paddle.to_tensor(np.stack([p[0] for p in pairs]))
            mask = None if pairs[0][1] is None else paddle.to_tensor(pairs[0][1])
        t0 = time.time()
        out = dmsp_restore(degraded, denoiser, kernel, mask, sigma_d=args.sigma_d, sigma_dae=args.sigma_dae,
                           num_iter=args.num_iter, mu=args.mu, alpha=args.alpha, gt=gt, seed=seed + 1,
                           desc=f"DMSP {names[0]}" + (f" +{len(names) - 1}" if len(names) > 1 else ""))
        seconds = (time.time() - t0) / max(args.num_iter, 1)
        out = out.numpy()
        start = initial_estimate(degraded, kernel.shape, mask).numpy() if gt is not None else None
        for i, (name, (_, _, info)) in enumerate(zip(names, batch)):
            write_image(os.path.join(args.output, f"{name}.png"), out[i] / 255.0, info)
            if gt is None:
                log(f"{name}: restored ({seconds:.3f} s/iter)")
                continue
            obs = degraded[i].numpy()
            if args.task == "sr":
                obs = obs[:, ::args.scale, ::args.scale]
            write_image(os.path.join(args.output, f"{name}_degraded.png"), obs / 255.0, info)
            pair = (official_psnr(start[i], gt[i], kernel.shape), official_psnr(out[i], gt[i], kernel.shape))
            scores.append(pair)
            log(f"{name}: PSNR {pair[0]:.2f} dB (start) -> {pair[1]:.2f} dB ({seconds:.3f} s/iter)")
        seed += 2
    if scores:
        mean = np.mean(scores, axis=0)
        log(f"mean over {len(scores)} image(s): PSNR {mean[0]:.2f} dB (start) -> {mean[1]:.2f} dB")
    return scores
