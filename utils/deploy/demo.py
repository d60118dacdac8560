"""The demo page behind demo.py: a local web page (Gradio) that restores one image at a time with any of the
project's models, the input and the result side by side, the PSNR where a reference is given, the result to
download.

- A restoration network (MIRNetV2 denoising, MIMO-UNet deblurring), from a checkpoint (``--weights``) or an
  exported model (``--model-dir``), restores through ``restoration.restore`` with a ``TilePlan``: large images
  go tile by tile, and the page shows the tiles' progress.
- A DMSP prior (a DAE: the official ``.mat``, a converted or trained checkpoint, or an exported DAE) gives three
  tasks, deblurring, super-resolution and demosaicing, solved by ``utils.dmsp``.  With "degrade first" (the
  official demos' way) the dropped image is taken as the sharp original: it is blurred (the ``--kernel`` file or
  a built-in motion blur), downsampled or mosaicked, noise is added, and the restoration is scored against it.

Nothing is fetched from the network: Gradio's analytics and version check are off and its theme uses the fonts
shipped inside the package.  The page logic (``Demo.restore``) works without Gradio, for tests and scripts.
"""
import dataclasses
import os
import tempfile
import time

import numpy as np

from ..errors import UserError

NETWORK_TASKS = {"MIRNet_v2": "denoising", "MIMOUNet": "deblurring", "MIMOUNetPlus": "deblurring"}
DMSP_TASKS = {"deblur": "DMSP deblurring", "sr": "DMSP super-resolution", "demosaic": "DMSP demosaicing"}
OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
               "GRADIO_SSR_MODE": "False"}


@dataclasses.dataclass
class Choice:
    """One entry of the page's model / task menu."""
    label: str
    runner: object = None       # a restoration network's runner (RGB [0, 1] batches in and out)
    denoiser: object = None     # a DMSP prior (the solver's denoiser callable)
    dmsp_task: str = None


def _dmsp_choices(denoiser, source):
    return [Choice(f"{title} (DAE prior, {source})", denoiser=denoiser, dmsp_task=task)
            for task, title in DMSP_TASKS.items()]


def _source(path):
    """A short name for a model file: its folder too for a training run's model_best / model_latest."""
    path = os.path.normpath(str(path))
    name = os.path.basename(path)
    parent = os.path.basename(os.path.dirname(path))
    return f"{parent}/{name}" if parent and name.startswith(("model_best", "model_latest")) else name


def open_choices(weights=(), model_dirs=(), device="auto"):
    """The menu for checkpoints (``weights``: .pdparams files or training folders, or DMSP's ``.mat`` DAE) and
    exported models (``model_dirs``), in the order given."""
    from ..device import set_device
    from ..dmsp.restore import DAE_NETWORKS, load_dae, make_denoiser
    from .runners import DygraphRunner, infer_device, make_runner, read_meta

    choices = []
    if weights:
        device = set_device(device)
    for path in weights:
        source = _source(path)
        if str(path).lower().endswith(".mat"):
            choices += _dmsp_choices(make_denoiser(load_dae(path)), source)
            continue
        from ..checkpoint import build_from_weights

        net, cfg = build_from_weights(path)
        if cfg.get("name") in DAE_NETWORKS:
            choices += _dmsp_choices(make_denoiser(net.fold() if hasattr(net, "fold") else net), source)
        else:
            task = NETWORK_TASKS.get(cfg.get("name"), "restoration")
            choices.append(Choice(f"{cfg.get('name')} {task} ({source})", runner=DygraphRunner(net, device)))
    for folder in model_dirs:
        from ..dmsp.solver import runner_denoiser

        runner = make_runner("auto", folder, infer_device(device))
        name, source = read_meta(folder).get("model_name", "model"), os.path.basename(os.path.normpath(folder))
        if name in DAE_NETWORKS:
            choices += _dmsp_choices(runner_denoiser(runner), f"exported {source}")
        else:
            choices.append(Choice(f"{name} {NETWORK_TASKS.get(name, 'restoration')} (exported {source})",
                                  runner=runner))
    if not choices:
        raise UserError("no model: pass --weights (a checkpoint) or --model-dir (an exported model)")
    return choices


def _crop_like(ref, img, crop):
    """The part of ``ref`` (any integer multiple of ``img``'s size) that the centre crop of ``img`` covers."""
    if not crop:
        return ref
    h, w = img.shape[1:]
    ry, rx = ref.shape[1] // h, ref.shape[2] // w
    if (ref.shape[1] != ry * h) or (ref.shape[2] != rx * w) or crop > min(h, w):
        return ref
    top, left = (h - crop) // 2, (w - crop) // 2
    return ref[:, top * ry:(top + crop) * ry, left * rx:(left + crop) * rx]


def _psnr_line(result, inp, ref, what="input"):
    from ..metrics import psnr

    if ref is None:
        return None, None, "no reference image: PSNR not computed"
    if ref.shape != result.shape:
        return None, None, (f"the reference is {ref.shape[1]} x {ref.shape[2]}, the result {result.shape[1]} x "
                            f"{result.shape[2]}: PSNR not computed")
    after = psnr(np.clip(result, 0, 1), ref)
    before = psnr(np.clip(inp, 0, 1), ref) if inp is not None and inp.shape == ref.shape else None
    if before is None:
        return None, after, f"PSNR against the reference: {after:.2f} dB"
    return before, after, (f"PSNR against the reference: {what} {before:.2f} dB -> result {after:.2f} dB "
                           f"({after - before:+.2f} dB)")


class Demo:
    """The page's work: ``restore`` one image file with a menu choice and write the result into ``out_dir``."""

    def __init__(self, choices, out_dir="results/demo", tile="auto", kernel=None, kernel_index=0):
        from ..dmsp.restore import load_kernel, motion_kernel

        self.choices = {c.label: c for c in choices}
        self.out_dir, self.tile = out_dir, tile
        self.kernel = load_kernel(kernel, kernel_index) if kernel else motion_kernel()
        self.kernel_source = (f"{os.path.basename(kernel)}[{kernel_index}]" if kernel else
                              "the built-in 9-pixel motion blur")

    @property
    def labels(self):
        return list(self.choices)

    def restore(self, label, image_path, reference_path=None, tile=None, degrade=True, num_iter=100, crop=128,
                progress=None):
        """Restore the image file ``image_path`` with the choice ``label``; returns a dict: ``input`` (the path of
        the input as shown, e.g. the degraded image), ``output`` (the restored PNG), ``psnr_input``, ``psnr``
        (None without a reference), ``message`` (one line for people).  ``tile``: a size, 0 for automatic
        (512-pixel tiles above a megapixel) or None for the page's default; ``progress(done, total, what)``."""
        from ..image_io import read_image

        if label not in self.choices:
            raise UserError(f"unknown model / task {label!r} (one of: {', '.join(self.choices)})")
        if not image_path:
            raise UserError("no image: drop one into the input field first")
        choice = self.choices[label]
        img, info = read_image(image_path, with_info=True)
        ref = read_image(reference_path) if reference_path else None
        stem = os.path.splitext(os.path.basename(image_path))[0]
        os.makedirs(self.out_dir, exist_ok=True)
        folder = tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=self.out_dir)  # one per restoration
        t0 = time.perf_counter()
        if choice.runner is not None:
            result = self._network(choice, img, info, ref, stem, folder, tile, progress)
        else:
            result = self._dmsp(choice, img, info, ref, stem, folder, degrade, int(num_iter), int(crop or 0))
        result["where"] = f"{time.perf_counter() - t0:.1f} s; written to {result['output']}"
        result["message"] = f"{result['summary']}; {result['psnr_text']} ({result['where']})"
        return result

    def _network(self, choice, img, info, ref, stem, folder, tile, progress):
        from ..image_io import write_image
        from .restoration import restore
        from .tiling import DEFAULT_OVERLAP, TilePlan, count_tiles

        tile = self.tile if tile is None else "auto" if tile in ("", 0, "0", "auto") else int(tile)
        overlap = DEFAULT_OVERLAP if tile == "auto" else min(DEFAULT_OVERLAP, tile // 4)  # small tiles, small overlap
        plan = TilePlan(tile=tile, overlap=overlap, multiple=choice.runner.size_multiple)
        try:
            size = plan.size_for(*img.shape[1:])
        except ValueError as exc:
            raise UserError(str(exc)) from None
        total, done = (count_tiles(*img.shape[1:], size, plan.overlap) if size else 1), [0]

        def step(n):
            done[0] += n
            if progress:
                progress(done[0], total, "tiles")

        if progress:
            progress(0, total, "tiles" if size else "restoring")
        out = np.clip(restore(choice.runner, img, plan, step if size else None), 0.0, 1.0)
        path = os.path.join(folder, f"{stem}_restored.png")
        write_image(path, out, info)  # in the input's form (bit depth, gray, alpha), as predict.py writes
        before, after, line = _psnr_line(out, img, ref)
        how = f"{total} tiles of {size} px" if size else "in one piece"
        return {"input": None, "output": path, "psnr_input": before, "psnr": after, "psnr_text": line,
                "summary": f"{choice.label}: {img.shape[2]} x {img.shape[1]} restored {how}"}

    def _dmsp(self, choice, img, info, ref, stem, folder, degrade, num_iter, crop):
        from ..dmsp.restore import Settings, group_images, restore_groups
        from ..image_io import ImageInfo, read_image

        task = choice.dmsp_task
        if crop and crop > min(img.shape[1:]):
            crop = 0
        kernel = self.kernel if task == "deblur" else np.ones((1, 1), np.float32)
        if task == "deblur" and kernel.shape[0] > min(img.shape[1:]) // 2:
            raise UserError(f"the image ({img.shape[2]} x {img.shape[1]}) is too small for the blur kernel "
                            f"({kernel.shape[1]} x {kernel.shape[0]})")
        settings = Settings(task=task, num_iter=max(num_iter, 1), synthesize=bool(degrade), seed=0)
        groups = group_images([(stem, img, ImageInfo(bit_depth=info.bit_depth))], 1, crop)
        lines = []
        records = restore_groups(groups, choice.denoiser, kernel, settings, folder, lines.append)
        out_path = os.path.join(folder, f"{stem}_restored.png")  # named as the networks' results
        os.replace(os.path.join(folder, f"{stem}.png"), out_path)
        result = {"input": None, "output": out_path, "psnr_input": None, "psnr": None}
        what = {"deblur": f"blur ({self.kernel_source})", "sr": "x2 downsampling", "demosaic": "RGGB mosaic"}[task]
        if degrade:
            rec = records[0]
            result.update(input=os.path.join(folder, f"{stem}_degraded.png"), psnr_input=rec["psnr_input"],
                          psnr=rec["psnr"])
            line = f"degraded by {what} + noise {settings.noise:g}, restored in {settings.num_iter} iterations"
            psnr_text = (f"PSNR against the original: start {rec['psnr_input']:.2f} dB -> result {rec['psnr']:.2f} "
                         f"dB ({rec['psnr'] - rec['psnr_input']:+.2f} dB; border cropped as the official code)")
        else:
            out = read_image(out_path)
            _, after, psnr_text = _psnr_line(out, None, None if ref is None else _crop_like(ref, img, crop))
            result["psnr"] = after
            line = f"restored in {settings.num_iter} iterations"
        shape = f"{crop} x {crop} centre crop" if crop else f"{img.shape[2]} x {img.shape[1]}"
        result.update(summary=f"{choice.label}, {shape}: {line}", psnr_text=psnr_text)
        return result


# ---------------------------------------------------------------------------------------------- the page
def build_page(demo, title="Image restoration"):
    """The Gradio page of ``demo`` (a ``Demo``)."""
    for key, value in OFFLINE_ENV.items():  # before Gradio reads them
        os.environ.setdefault(key, value)
    try:
        import gradio as gr
    except ImportError:
        raise UserError("the demo page needs Gradio: pip install -r requirements-demo.txt") from None

    def run(label, image, reference, tile, degrade, num_iter, crop, progress=gr.Progress(track_tqdm=True)):
        def report(done, total, what):
            progress((done, total), desc=what, unit=what)

        try:
            res = demo.restore(label, image, reference, tile, degrade, num_iter, crop, report)
        except UserError as exc:
            raise gr.Error(str(exc)) from None
        shown = res["input"] or image
        return shown, res["output"], f"**{res['psnr_text']}**  \n{res['summary']}  \n{res['where']}", res["output"]

    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(f"## {title}\nDrop an image, pick a model and press **Restore**. A reference (the clean or "
                    "sharp image) gives the PSNR. DMSP tasks: with *degrade first*, the image is taken as the "
                    "original, degraded, restored and scored against it.")
        task = gr.Dropdown(demo.labels, value=demo.labels[0], label="Model / task", elem_id="task")
        with gr.Row():
            image = gr.Image(type="filepath", label="Image", sources=["upload"], elem_id="image", height=240)
            reference = gr.Image(type="filepath", label="Reference (optional, for PSNR)", sources=["upload"],
                                 elem_id="reference", height=240)
        with gr.Accordion("Options", open=False):
            tile = gr.Number(value=0 if demo.tile == "auto" else int(demo.tile), precision=0, elem_id="tile",
                             label="Tile size in pixels (0: automatic, 512-pixel tiles above 1 megapixel)")
            degrade = gr.Checkbox(value=True, label="DMSP: degrade first (the image is the original)")
            num_iter = gr.Slider(10, 300, value=100, step=10, label="DMSP iterations")
            crop = gr.Number(value=128, precision=0, label="DMSP: centre crop in pixels (0: the whole image)")
        button = gr.Button("Restore", variant="primary", elem_id="restore")
        with gr.Row():
            shown = gr.Image(label="Input", interactive=False, elem_id="shown", height=360)
            result = gr.Image(label="Result", interactive=False, format="png", elem_id="result", height=360)
        message = gr.Markdown(elem_id="message")
        download = gr.File(label="Download the result", interactive=False, elem_id="download")
        button.click(run, [task, image, reference, tile, degrade, num_iter, crop], [shown, result, message, download])
    return page


def serve(demo, host="127.0.0.1", port=7860, title="Image restoration"):
    """Build the page and serve it until interrupted (no share link, nothing fetched from outside)."""
    page = build_page(demo, title)
    os.makedirs(demo.out_dir, exist_ok=True)
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests to the page
    page.queue().launch(server_name=host, server_port=int(port), share=False, inbrowser=False, show_error=True,
                        allowed_paths=[os.path.abspath(demo.out_dir)])
