"""The README's quick start (configs/mirnet_v2_quick.yml on the lite SIDD-like data) restores clearly: the
validation PSNR ends at least 3 dB above the noisy input's, and the pictures it points to are there.

A minute or two on a 2-core CPU, so it is marked slow; CI runs it (`python -m pytest -m slow
tests/test_quick_start.py`).  The iterations are fixed here (no time cap), so the result does not depend on
how busy the machine is."""
import re
import time

import pytest

from utils.config import load_config
from utils.engine import Trainer

from conftest import ROOT, read_png


@pytest.mark.slow
def test_quick_start_gains_3_db(sidd_lite, tmp_path):
    out = tmp_path / "run"
    cfg = load_config(f"{ROOT}/configs/mirnet_v2_quick.yml", [
        f"data.train.root={sidd_lite}/SIDD_patches/train_mini", f"data.val.root={sidd_lite}/SIDD_patches/val_mini",
        "train.max_minutes=null", f"output.model_dir={out}/model", f"output.log_dir={out}/logs",
        "log.progress_bar=false"])
    start = time.perf_counter()
    Trainer(cfg, device="cpu").fit()
    seconds = time.perf_counter() - start
    log = (out / "model" / "train.log").read_text()
    found = re.search(r"finished at iteration 80; best psnr ([\d.]+) at iteration \d+ \(input ([\d.]+) dB: "
                      r"\+([\d.]+) dB\)", log)
    assert found, log[-2000:]
    best, noisy, gain = map(float, found.groups())
    print(f"quick start: validation PSNR {noisy:.2f} dB (noisy) -> {best:.2f} dB (+{gain:.2f} dB), "
          f"training {seconds:.0f} s")
    assert gain >= 3.0
    read_png(out / "model" / "curves.png", (250, 700))
    comparison = out / "model" / "val_images" / "astronaut_0.png"
    read_png(comparison, (128, 3 * 128))
    assert f"figures: {out / 'model' / 'curves.png'}" in log and str(comparison) in log
