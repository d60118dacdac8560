"""demo.py: the page's logic (utils/deploy/demo.py) on tiny models, and the page itself driven in headless
Chromium with Playwright: upload, restore, the result shown and downloadable, nothing fetched from outside."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import paddle
import pytest
import yaml

from networks import build_network
from utils.checkpoint import save_weights
from utils.errors import UserError
from utils.image_io import read_image, write_image

from conftest import ROOT, read_png
from test_networks import TINY

CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                             shutil.which("chromium-browser")) if p and os.path.isfile(p)), None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def checkpoint(folder, name, seed=0):
    """A tiny randomly initialised network of ``name`` saved with its config.yml, as training writes it."""
    paddle.seed(seed)
    cfg = {"name": name, **TINY[name]}
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(build_network(cfg), str(folder / "model_best.pdparams"))
    (folder / "config.yml").write_text(yaml.safe_dump({"network": cfg}))
    return str(folder / "model_best.pdparams")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(noisy, clean) PNGs of 96 x 80 pixels and the tiny MIRNetV2 / DAE checkpoints."""
    root = tmp_path_factory.mktemp("demo")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:80, 0:96] / 40.0
    clean = np.stack([np.sin(xx * 3) * 0.3 + 0.5, np.cos(yy * 2) * 0.3 + 0.5, (xx + yy) / 5]).astype(np.float32)
    noisy = np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1).astype(np.float32)
    write_image(str(root / "noisy.png"), noisy)
    write_image(str(root / "clean.png"), clean)
    return {"root": root, "noisy": str(root / "noisy.png"), "clean": str(root / "clean.png"),
            "mirnet": checkpoint(root / "mirnet", "MIRNet_v2"), "dae": checkpoint(root / "dae", "DAE_BN")}


def make_demo(files, tmp_path, weights=("mirnet",), **kw):
    from utils.deploy.demo import Demo, open_choices

    return Demo(open_choices([files[w] for w in weights], device="cpu"), str(tmp_path / "out"), **kw)


def test_network_restoration_tiled_with_psnr(files, tmp_path):
    demo = make_demo(files, tmp_path, tile=32)
    assert demo.labels == ["MIRNet_v2 denoising (mirnet/model_best.pdparams)"]
    steps = []
    res = demo.restore(demo.labels[0], files["noisy"], files["clean"], progress=lambda *a: steps.append(a))
    assert steps[0] == (0, 12, "tiles") and steps[-1] == (12, 12, "tiles")  # 4 x 3 tiles of 32 px, overlap 8
    out = read_image(res["output"])
    assert out.shape == (3, 80, 96) and res["output"].endswith("noisy_restored.png")
    # the page's result is the restoration loop's tiled result
    from utils.deploy.restoration import restore
    from utils.deploy.tiling import TilePlan

    runner = next(iter(demo.choices.values())).runner
    expected = np.clip(restore(runner, read_image(files["noisy"]), TilePlan(tile=32, overlap=8)), 0, 1)
    np.testing.assert_allclose(out, expected, atol=0.5 / 255 + 1e-6)
    from utils.metrics import psnr

    assert res["psnr"] == pytest.approx(psnr(out, read_image(files["clean"])), abs=0.05)
    assert res["psnr_input"] == pytest.approx(psnr(read_image(files["noisy"]), read_image(files["clean"])))
    assert "PSNR against the reference: input" in res["message"] and "12 tiles of 32 px" in res["message"]
    # tile 0 on the page: automatic (a small image in one piece); no reference: no PSNR
    res = demo.restore(demo.labels[0], files["noisy"], None, tile=0)
    assert res["psnr"] is None and "in one piece" in res["message"] and "no reference" in res["message"]


def test_reference_of_another_size_and_bad_input(files, tmp_path):
    demo = make_demo(files, tmp_path)
    small = str(tmp_path / "small.png")
    write_image(small, np.zeros((3, 8, 8), np.float32))
    res = demo.restore(demo.labels[0], files["noisy"], small)
    assert res["psnr"] is None and "the reference is 8 x 8" in res["message"]
    with pytest.raises(UserError, match="no image"):
        demo.restore(demo.labels[0], None)
    with pytest.raises(UserError, match="unknown model / task"):
        demo.restore("nothing", files["noisy"])
    from utils.deploy.demo import open_choices

    with pytest.raises(UserError, match="no model"):
        open_choices([], [])


def test_dmsp_tasks(files, tmp_path):
    demo = make_demo(files, tmp_path, weights=("dae",))
    labels = demo.labels
    assert [lbl.split(" (")[0] for lbl in labels] == ["DMSP deblurring", "DMSP super-resolution",
                                                      "DMSP demosaicing"]
    res = demo.restore(labels[0], files["clean"], degrade=True, num_iter=3, crop=48)
    assert read_image(res["output"]).shape == (3, 48, 48) and read_image(res["input"]).shape[1:] == (40, 40)
    assert res["output"].endswith("clean_restored.png")
    assert res["psnr"] is not None and res["psnr_input"] is not None and "built-in 9-pixel motion" in res["message"]
    res = demo.restore(labels[1], files["clean"], degrade=True, num_iter=2, crop=32)
    assert read_image(res["input"]).shape[1:] == (16, 16) and read_image(res["output"]).shape[1:] == (32, 32)
    # a real (not degraded) image, with a reference of the same size: scored on the same centre crop
    res = demo.restore(labels[2], files["noisy"], files["clean"], degrade=False, num_iter=2, crop=32)
    assert res["psnr"] is not None and res["input"] is None and "PSNR against the reference" in res["message"]


def test_exported_models_on_the_menu(files, tmp_path):
    """--model-dir: an exported MIMO-UNet deblurs under Paddle Inference as its checkpoint does; an exported DAE
    becomes the three DMSP tasks."""
    from utils.checkpoint import build_from_weights
    from utils.deploy.demo import Demo, open_choices
    from utils.deploy.export import export_model

    mimo = checkpoint(tmp_path / "mimo_run", "MIMOUNet")
    for key, path in (("mimo", mimo), ("dae", files["dae"])):
        net, cfg = build_from_weights(path)
        export_model(net.fold() if key == "dae" else net, cfg, str(tmp_path / key))
    demo = Demo(open_choices([mimo], [str(tmp_path / "mimo"), str(tmp_path / "dae")], "cpu"), str(tmp_path / "out"))
    assert demo.labels[:2] == ["MIMOUNet deblurring (mimo_run/model_best.pdparams)",
                               "MIMOUNet deblurring (exported mimo)"]
    assert [lbl.split(" (")[1] for lbl in demo.labels[2:]] == ["DAE prior, exported dae)"] * 3
    by_checkpoint, exported = (read_image(demo.restore(lbl, files["noisy"])["output"]) for lbl in demo.labels[:2])
    assert np.abs(by_checkpoint - exported).max() <= 1.5 / 255
    res = demo.restore(demo.labels[3], files["clean"], num_iter=2, crop=32)
    assert read_image(res["output"]).shape == (3, 32, 32) and res["psnr"] is not None  # x2 SR of a 16 px input


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url, proc, seconds=120):
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            raise AssertionError(f"demo.py exited with {proc.returncode}: {proc.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"no answer from {url} within {seconds} s")


def test_demo_page_in_a_headless_browser(files, tmp_path):
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install -r requirements-demo.txt)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright is not installed (pip install -r requirements-demo.txt)")
    if CHROMIUM is None:
        pytest.skip("no Chromium browser installed (Debian: apt-get install chromium; or set CHROMIUM=path)")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "demo.py"), "--weights", files["mirnet"],
                             "--port", str(port), "--tile", "32", "--device", "cpu", "--output",
                             str(tmp_path / "results")], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    outside = []
    try:
        _wait_for(url, proc)
        with sync_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(  # a fresh profile folder
                str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True,
                accept_downloads=True, viewport={"width": 1280, "height": 1100})
            page = context.new_page()
            page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                    else outside.append(r.url))
            page.goto(url)
            page.locator("#image input[type=file]").set_input_files(files["noisy"])
            page.locator("#reference input[type=file]").set_input_files(files["clean"])
            page.locator("#image img").wait_for(timeout=30000)
            page.locator("#reference img").wait_for(timeout=30000)
            page.locator("#restore").click()
            page.locator("#result img").wait_for(timeout=120000)
            message = page.locator("#message")
            message.get_by_text("PSNR against the reference").wait_for(timeout=30000)
            assert "12 tiles of 32 px" in message.inner_text()
            assert page.locator("#shown img").is_visible()
            with page.expect_download(timeout=30000) as info:
                page.locator("#download a").first.click()
            saved = tmp_path / "downloaded.png"
            info.value.save_as(saved)
            shot = tmp_path / "demo_page.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the demo page after a restoration: {shot}")
            context.close()
        got = read_image(str(saved))
        assert got.shape == (3, 80, 96)
        written = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "results") for f in fs]
        assert len(written) == 1 and np.array_equal(read_image(written[0]), got)
        read_png(shot, (600, 1000))
        assert not outside, f"the page fetched from outside: {outside[:5]}"
    finally:
        proc.send_signal(signal.SIGINT)  # as Ctrl-C ends it
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
