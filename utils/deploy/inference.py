"""What infer.py does with an exported model: open it with the runner and device asked for, restore images (or
the built-in test image), score them against ground truth, log the raw outputs (reprod_log) and the auto_log
benchmark report; or run the DMSP solver with the exported DAE as its prior."""
import os

from ..errors import UserError
from ..fileio import check_not_inputs
from .accelerators import tensorrt_options
from .restoration import (
    array_item,
    collect_items,
    default_image,
    raise_for_unreadable,
    restore,
    restore_items,
    restored_records,
    save_reprod_log,
    summary_lines,
    tile_plan,
    unreadable,
)
from .runners import check_task, infer_device, make_runner, read_meta


def open_model(args):
    """(runner, the export's metadata, device) for infer.py's arguments."""
    device = infer_device(args.device, args.use_gpu, args.use_npu)
    runner = make_runner(args.backend, args.model_dir, device, args.cpu_threads, args.enable_mkldnn, args.precision,
                         tensorrt_options(args))
    meta = read_meta(args.model_dir if os.path.isdir(args.model_dir) else os.path.dirname(args.model_dir))
    return runner, meta, device


def restore_images(args, runner, meta, log=print):
    """Restore ``--img-path`` (or the built-in image) into ``--save-dir``; returns the records."""
    from .benchmark_log import make_auto_logger

    check_task(runner, ("denoising", "deblurring"), "infer.py", args.any_task)
    if args.img_path:
        items = collect_items(args.img_path, args.gt)
    else:
        items = [array_item("astronaut_noisy.png", *default_image())]
    log_path = args.reprod_log or os.path.join(args.save_dir, "inference_outputs.npy")
    check_not_inputs([log_path if log_path.endswith(".npy") else f"{log_path}.npy"],
                     [p for it in items for p in it.sources], "choose another --reprod-log")
    plan = tile_plan(args, runner.size_multiple, meta)
    autolog = None
    if args.benchmark:
        img = items[0].load()[0]
        restore(runner, img, plan)  # warm-up: oneDNN creates its primitives on the first run
        autolog = make_auto_logger(model_name=meta.get("model_name", "model"), model_precision=args.precision,
                                   batch_size=args.batch_size, data_shape=",".join(map(str, img.shape)),
                                   save_path=None, inference_config=runner.config, pids=os.getpid(),
                                   process_name=None, gpu_ids=None, warmup=0)
    outputs = {}
    records = restore_items(runner, items, args.save_dir, args.batch_size, plan, timer=autolog and autolog.times,
                            on_result=lambda rec, inp, out, gt: outputs.__setitem__(rec["name"], out),
                            skip_unreadable=True)
    for line in summary_lines(records):
        log(line)
    log_path = save_reprod_log(log_path, outputs, restored_records(records))
    done = f"restored {len(restored_records(records))} image(s) into {args.save_dir}"
    log(f"{done}; outputs logged to {log_path}")
    if autolog:
        autolog.report()
    raise_for_unreadable(unreadable(records), len(records), done)
    return records


def restore_dmsp(args, runner, meta, device, log=print):
    """infer.py --dmsp-task: the DMSP solver around the exported DAE (utils/dmsp/restore.py)."""
    from ..dmsp.restore import Settings, infer_dmsp

    if args.gt:
        raise UserError("--clean-dir is not used with --dmsp-task: pass sharp images with --synthesize to score")
    check_task(runner, ("dmsp_prior",), "infer.py --dmsp-task", args.any_task)
    settings = Settings.from_args(args, task=args.dmsp_task)
    return infer_dmsp(runner, meta, device, settings, args.img_path, args.save_dir, args.kernel, args.kernel_index,
                      args.crop, args.benchmark, args.precision, args.reprod_log, log)
