"""Bad input against every entry script and tool: the exit status, one ``error:`` line and no traceback, every
input and earlier output unchanged (checksums), no process left behind, every case bounded in time.

Most cases call ``main()`` through ``run_main`` in this process, as the scripts do; the ones where the process
matters (a data loader that could hang, worker processes, exit statuses of the real scripts) run subprocesses
in their own process group with a timeout.  Ctrl-C, ``kill -9`` + ``--resume`` and the failing card of a
two-process launch are in test_engine.py.
"""
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import psutil
import pytest
import yaml

import export_model
import generate_patches_SIDD
import infer
import predict
import prepare_GoPro
import restore_dmsp
import test_deblurring_gopro
import test_denoising_sidd
import train
from tools import alignment as alignment_tool
from tools import benchmark as benchmark_tool
from tools import convert_weights, fold_dae, quantize
from utils.deploy.restoration import default_image
from utils.fileio import clean_temporaries
from utils.image_io import write_image

from conftest import ROOT
from test_networks import TINY, save_tiny_network

CASE_SECONDS = 120  # no case may take longer (in-process cases are stopped by an alarm)
TINY_TRAIN = ["network.n_feat=8", "network.n_RRG=1", "network.n_MRB=1", "log.progress_bar=false",
              "log.visualdl=false", "log.print_freq=1"]


# ---------------------------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True)
def _bounded():
    """Every case ends within CASE_SECONDS and leaves no child process running (of its own: helpers that other
    test modules left, such as multiprocessing's resource tracker, are not the case's)."""
    def too_long(signum, frame):
        raise TimeoutError(f"case took more than {CASE_SECONDS} s")

    def children():
        return {p.pid for p in psutil.Process().children(recursive=True)}

    before = children()
    old = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(CASE_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    deadline = time.time() + 10
    while children() - before and time.time() < deadline:
        time.sleep(0.2)  # data-loader workers of a case that just ended
    assert not children() - before, "a case left processes running"


def shown(text):
    """The lines a terminal shows: each line's text after its last carriage return (progress bars redraw with
    one), blank ones left out."""
    text = text.replace("\r\n", "\n")  # a terminal's line ends
    return [seg for seg in (line.rsplit("\r", 1)[-1] for line in text.split("\n")) if seg.strip()]


def run(main, argv, capsys):
    """(exit status, stdout, stderr) of a script's main() run through run_main; never a traceback."""
    from utils.cli import run_main

    try:
        run_main(main, [str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return code, out, err


def one_line(capsys, main, argv, *expected):
    """Run a bad command: exit status 2 and exactly one line, ``error: ...``, holding every ``expected`` text."""
    code, _, err = run(main, argv, capsys)
    lines = shown(err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, lines)
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def checksums(*roots):
    """{path: sha256} of every file under ``roots`` (files or folders)."""
    out = {}
    for root in map(str, roots):
        paths = [root] if os.path.isfile(root) else [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
        for p in paths:
            with open(p, "rb") as f:
                out[p] = hashlib.sha256(f.read()).hexdigest()
    return out


@contextlib.contextmanager
def unchanged(*roots):
    """Every file under ``roots`` is there afterwards with the same content, and no file was added."""
    before = checksums(*roots)
    yield
    assert checksums(*roots) == before


def script_run(args, timeout=90, cwd=None, terminal=False):
    """A script as a user runs it, in its own process group; returns the CompletedProcess.  Whatever it started
    must be gone when it ends.  ``terminal``: its stderr is a terminal (a pseudo-terminal), as in a shell."""
    import threading

    master = slave = None
    if terminal:
        import fcntl
        import struct
        import termios

        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns: bars are drawn
    proc = subprocess.Popen([sys.executable] + [str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=slave if terminal else subprocess.PIPE, text=True, cwd=cwd or ROOT,
                            start_new_session=True)
    chunks = []
    if terminal:
        os.close(slave)

        def drain():
            while True:
                try:
                    data = os.read(master, 4096)
                except OSError:  # the other side closed
                    break
                if not data:
                    break
                chunks.append(data)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"{args[0]} did not end within {timeout} s (a hang)") from None
    if terminal:
        reader.join(10)
        os.close(master)
        err = b"".join(chunks).decode("utf-8", "replace")
    time.sleep(0.5)
    left = [p for p in psutil.process_iter(["pid"]) if _group(p) == proc.pid]
    for p in left:
        p.kill()
    assert not left, f"{args[0]} left {len(left)} process(es) running"
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _group(p):
    try:
        return os.getpgid(p.pid)
    except (ProcessLookupError, PermissionError):
        return None


@pytest.fixture
def unwritable(tmp_path):
    """A folder nobody may write into: immutable (chattr +i) when running as root, read-only otherwise."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
            pytest.skip("running as root without chattr: no folder is unwritable here")
    else:
        folder.chmod(0o555)
    yield folder
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)])
    else:
        folder.chmod(0o755)


# ---------------------------------------------------------------------------------------------- inputs
@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Tiny networks, an export, images and a SIDD-like paired folder, made once."""
    root = tmp_path_factory.mktemp("reliability")
    smaller = {"MIRNet_v2": {"n_feat": 8, "n_RRG": 1, "n_MRB": 1}}  # exported in seconds
    nets = {name: save_tiny_network(str(root / name), name, **smaller.get(name, {}))[0]
            for name in ("MIRNet_v2", "MIMOUNet", "DAE", "DAE_BN")}
    export_model.main(["--weights", nets["MIRNet_v2"], "--save-inference-dir", str(root / "export")])
    noisy, clean = default_image(48)
    for sub in ("input", "groundtruth"):
        (root / "pairs" / sub).mkdir(parents=True)
    for k in range(3):
        write_image(str(root / "pairs" / "input" / f"p{k}.png"), noisy[:, k:k + 40, :40])
        write_image(str(root / "pairs" / "groundtruth" / f"p{k}.png"), clean[:, k:k + 40, :40])
    np.save(str(root / "kernel.npy"), np.ones((3, 3)) / 9)
    return {"root": root, "export": str(root / "export"), **nets}


@pytest.fixture
def photos(tmp_path):
    """x.png and x.jpg (the same stem) and y.png, 32 x 32."""
    folder = tmp_path / "photos"
    folder.mkdir()
    noisy, _ = default_image(32)
    for name in ("x.png", "x.jpg", "y.png"):
        write_image(str(folder / name), noisy)
    return folder


def with_broken(folder, name="broken.png"):
    (folder / name).write_bytes(b"this is not an image")
    return folder / name


# =============================================================== 1. outputs never replace inputs; one output each
@pytest.mark.parametrize("script", ["predict", "infer"])
def test_outputs_into_the_input_folder_are_refused(made, photos, script, capsys):
    argv = ([photos, "--weights", made["MIRNet_v2"]] if script == "predict" else
            ["--model-dir", made["export"], "--img-path", photos])
    with unchanged(photos):
        one_line(capsys, predict.main if script == "predict" else infer.main, argv + ["--save-dir", photos],
                 "would replace the input", "x.png")


@pytest.mark.parametrize("script", ["predict", "infer"])
def test_inputs_of_one_stem_get_their_own_outputs_and_the_count_is_true(made, photos, script, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ([photos, "--weights", made["MIRNet_v2"]] if script == "predict" else
            ["--model-dir", made["export"], "--img-path", photos])
    with unchanged(photos):
        code, stdout, _ = run(predict.main if script == "predict" else infer.main, argv + ["--save-dir", out], capsys)
    images = sorted(f for f in os.listdir(out) if f.endswith(".png"))
    assert code == 0 and images == ["x.png", "x_jpg.png", "y.png"]
    assert f"restored {len(images)} image(s) into {out}" in stdout


def test_same_names_from_two_folders_and_a_suffix(made, tmp_path, capsys):
    noisy, _ = default_image(32)
    for sub in ("a", "b"):
        write_image(str(tmp_path / sub / "x.png"), noisy)
    code, stdout, _ = run(predict.main, [str(tmp_path / "?" / "x.png"), "--weights", made["MIRNet_v2"], "--save-dir",
                                         tmp_path / "out"], capsys)
    assert code == 0 and sorted(os.listdir(tmp_path / "out")) == ["x.png", "x_png.png"]
    assert "restored 2 image(s)" in stdout
    with unchanged(tmp_path / "b" / "x.png"):  # with a suffix, the input folder is a valid destination
        code, _, _ = run(predict.main, [tmp_path / "b", "--weights", made["MIRNet_v2"], "--save-dir", tmp_path / "b",
                                        "--suffix", "_restored"], capsys)
    assert code == 0 and sorted(os.listdir(tmp_path / "b")) == ["x.png", "x_restored.png"]


def test_hard_link_of_an_input_is_not_overwritten(made, photos, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    os.link(photos / "y.png", out / "y.png")
    with unchanged(photos):
        one_line(capsys, predict.main, [photos, "--weights", made["MIRNet_v2"], "--save-dir", out],
                 "would replace the input")


def test_ground_truth_is_an_input_too(made, tmp_path, capsys):
    pairs = made["root"] / "pairs"
    with unchanged(pairs):
        one_line(capsys, predict.main, [pairs / "input", "--gt", pairs / "groundtruth", "--weights", made["MIRNet_v2"],
                                        "--save-dir", pairs / "groundtruth"], "would replace the input")


def test_evaluation_outputs_into_the_data_are_refused(made, tmp_path, capsys):
    gopro = tmp_path / "gopro"
    shutil.copytree(made["root"] / "pairs" / "input", gopro / "blur")
    shutil.copytree(made["root"] / "pairs" / "groundtruth", gopro / "sharp")
    with unchanged(gopro):
        one_line(capsys, test_deblurring_gopro.main, ["--weights", made["MIMOUNet"], "--data", gopro, "--save-dir",
                                                      gopro / "blur"], "would replace the input")


def test_dmsp_outputs_into_the_input_folder_are_refused(made, photos, capsys):
    with unchanged(photos):
        one_line(capsys, restore_dmsp.main, ["--input", photos, "--weights", made["DAE"], "--kernel",
                                             made["root"] / "kernel.npy", "--num-iter", "1", "--output", photos],
                 "would replace the input")


def test_dmsp_inputs_of_one_stem_get_their_own_outputs(made, photos, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, _ = run(restore_dmsp.main, ["--input", photos, "--weights", made["DAE"], "--kernel",
                                         made["root"] / "kernel.npy", "--num-iter", "1", "--output", out], capsys)
    assert code == 0 and sorted(f for f in os.listdir(out) if f.endswith(".png")) == ["x.png", "x_jpg.png", "y.png"]


# =============================================================== 2. no tool writes over its own input
@pytest.fixture
def official_pth(tmp_path):
    torch = pytest.importorskip("torch")
    from networks import build_network

    net = build_network({"name": "MIRNet_v2", **TINY["MIRNet_v2"]})
    path = tmp_path / "official.pth"
    torch.save({"params": {k: torch.from_numpy(v.numpy()) for k, v in net.state_dict().items()}}, str(path))
    return path


def test_convert_weights_refuses_dst_equal_to_src(official_pth, tmp_path, capsys):
    args = ["--arch", "MIRNet_v2", "-o", "n_feat=16", "-o", "n_MRB=1", "--src", official_pth]
    with unchanged(official_pth):
        one_line(capsys, convert_weights.main, args + ["--dst", official_pth], "would replace the input")
        os.link(official_pth, tmp_path / "link.pdparams")
        one_line(capsys, convert_weights.main, args + ["--dst", tmp_path / "link.pdparams"], "would replace")
    code, out, _ = run(convert_weights.main, args + ["--dst", tmp_path / "new.pdparams"], capsys)
    assert code == 0 and "wrote" in out


def test_fold_dae_refuses_dst_equal_to_src(made, capsys):
    with unchanged(made["DAE_BN"]):
        one_line(capsys, fold_dae.main, ["--src", made["DAE_BN"], "--dst", made["DAE_BN"]], "would replace the input")


def test_export_refuses_to_replace_its_config_and_keeps_its_weights(made, tmp_path, capsys):
    folder = tmp_path / "w"
    shutil.copytree(os.path.dirname(made["DAE"]), folder)
    shutil.copy(folder / "config.yml", folder / "inference.yml")
    with unchanged(folder):
        one_line(capsys, export_model.main, ["--weights", folder / "weights.pdparams", "-c", folder / "inference.yml",
                                             "--save-inference-dir", folder], "would replace the input")
    with unchanged(folder / "weights.pdparams", folder / "config.yml"):  # beside the weights is fine (TIPC does it)
        code, _, _ = run(export_model.main, ["--weights", folder / "weights.pdparams", "--save-inference-dir", folder],
                         capsys)
    assert code == 0 and (folder / "inference.pdmodel").is_file()


def test_quantize_refuses_to_replace_the_fp32_model(made, capsys):
    with unchanged(made["export"]):
        one_line(capsys, quantize.main, ["--model-dir", made["export"], "--calib-dir", made["root"] / "pairs" / "input",
                                         "--save-dir", made["export"]], "would replace the input")


@pytest.mark.parametrize("where", ["inside", "same", "around"])
def test_patch_generation_refuses_overlapping_trees(sidd_lite, tmp_path, where, capsys):
    src = tmp_path / "SIDD"
    shutil.copytree(sidd_lite / "SIDD_Medium_Srgb", src)
    dst = {"inside": src / "Data" / "patches", "same": src, "around": tmp_path}[where]
    with unchanged(src):
        one_line(capsys, generate_patches_SIDD.main, ["--src", src, "--dst", dst, "--ps", "32", "--num_patches", "1",
                                                      "--num_cores", "1"], "overlap")


def _gopro_large(root):
    img = np.zeros((8, 8, 3), np.uint8)
    for split in ("train", "test"):
        for kind in ("blur", "sharp"):
            (root / split / "SEQ" / kind).mkdir(parents=True)
            cv2.imwrite(str(root / split / "SEQ" / kind / "0.png"), img)
    return root


@pytest.mark.parametrize("where", ["inside", "same"])
def test_gopro_preparation_refuses_a_destination_in_the_source(tmp_path, where, capsys):
    src = _gopro_large(tmp_path / "GOPRO_Large")
    with unchanged(src):
        one_line(capsys, prepare_GoPro.main, ["--root_src", src, "--root_dst", src / "flat" if where == "inside"
                                              else src], "outside the source")


def test_benchmark_and_alignment_refuse_to_replace_their_inputs(made, tmp_path, capsys):
    records = tmp_path / "records.json"
    records.write_text('[{"model": "MIRNet_v2", "backend": "dygraph"}]')
    with unchanged(records):
        one_line(capsys, benchmark_tool.main, ["--from-json", records, "--json", records], "would replace the input")
    rec = tmp_path / "rec.npy"
    np.save(str(rec), {"out": np.zeros(2)})
    with unchanged(rec):
        one_line(capsys, alignment_tool.main, ["compare", rec, rec, "--report", rec], "would replace the input")


# =============================================================== 3. a fresh run never replaces an earlier one
def _train_args(sidd_lite, model_dir, *extra):
    return ["-c", os.path.join(ROOT, "configs", "mirnet_v2_lite.yml"), "--device", "cpu", "-o", *TINY_TRAIN,
            f"data.train.root={sidd_lite}/SIDD_patches/train_mini", f"data.val.root={sidd_lite}/SIDD_patches/val_mini",
            "train.stages=[{iters: 2, batch_size: 2, patch_size: 16}]", "val.freq=2", "output.checkpoint_freq=2",
            f"output.model_dir={model_dir}", *extra]


@pytest.mark.parametrize("earlier", ["model_best.pdparams", "model_latest.pdparams", "train.log", "config.yml",
                                     "state_iter00000002.pdstates"])
def test_fresh_run_into_an_earlier_run_is_refused(sidd_lite, tmp_path, earlier, capsys):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / earlier).write_bytes(b"an earlier run's file")
    with unchanged(model_dir):
        one_line(capsys, train.main, _train_args(sidd_lite, model_dir), earlier, "--resume", "output.model_dir",
                 "output.overwrite")


def test_resuming_another_folders_state_into_an_earlier_run_is_refused(sidd_lite, tmp_path, capsys):
    code, _, _ = run(train.main, _train_args(sidd_lite, tmp_path / "a"), capsys)
    assert code == 0
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "model_best.pdparams").write_bytes(b"run b's best weights")
    with unchanged(tmp_path / "b"):
        one_line(capsys, train.main, _train_args(sidd_lite, tmp_path / "b") + [
            "--resume", tmp_path / "a" / "state_iter00000002.pdstates"], "holds an earlier run", "model_best")


@pytest.mark.parametrize("inside", ["train_mini", "train_mini/model", "val_mini"])
@pytest.mark.parametrize("option", ["output.model_dir", "output.log_dir"])
def test_output_folders_inside_a_data_set_are_refused(sidd_lite, tmp_path, capsys, inside, option):
    data = tmp_path / "SIDD_patches"
    shutil.copytree(sidd_lite / "SIDD_patches", data)
    args = _train_args(sidd_lite, tmp_path / "run", f"data.train.root={data}/train_mini",
                       f"data.val.root={data}/val_mini", f"{option}={data}/{inside}")
    split = "val" if inside.startswith("val") else "train"
    with unchanged(data):
        one_line(capsys, train.main, args, option, f"is inside data.{split}.root", "outside the data sets")


def test_overwrite_key_replaces_the_earlier_run(sidd_lite, tmp_path, capsys):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    for name in ("model_best.pdparams", "state_iter00000009.pdstates", "train.log"):
        (model_dir / name).write_bytes(b"old")
    code, _, _ = run(train.main, _train_args(sidd_lite, model_dir, "output.overwrite=true"), capsys)
    assert code == 0 and "state_iter00000009.pdstates" not in os.listdir(model_dir)
    assert (model_dir / "model_best.pdparams").read_bytes() != b"old"


# =============================================================== 4. a bad training sample ends the run at once
@pytest.fixture(scope="module")
def bad_training_sets(sidd_lite, tmp_path_factory):
    """Copies of the lite training set: one with a corrupt input, one with a pair of two sizes."""
    root = tmp_path_factory.mktemp("bad_train")
    sets = {}
    for kind in ("corrupt", "sizes"):
        folder = root / kind
        shutil.copytree(sidd_lite / "SIDD_patches" / "train_mini", folder)
        name = sorted(os.listdir(folder / "input"))[1]
        if kind == "corrupt":
            (folder / "input" / name).write_bytes(b"\x89PNG truncated")
        else:
            img = cv2.imread(str(folder / "groundtruth" / name))
            cv2.imwrite(str(folder / "groundtruth" / name), img[:-8, :-8])
        sets[kind] = (folder, name)
    return sets


@pytest.mark.parametrize("kind", ["corrupt", "sizes"])
@pytest.mark.parametrize("workers", [0, 2])
def test_bad_training_sample_ends_the_run_in_seconds(sidd_lite, bad_training_sets, tmp_path, kind, workers):
    folder, name = bad_training_sets[kind]
    args = _train_args(sidd_lite, tmp_path / "run", f"data.train.root={folder}", f"data.num_workers={workers}",
                       "data.train.cache=false", "train.stages=[{iters: 40, batch_size: 4, patch_size: 16}]")
    start = time.time()
    with unchanged(folder):
        res = script_run([os.path.join(ROOT, "train.py")] + args, timeout=90)
    lines = shown(res.stderr)
    assert res.returncode == 2 and "Traceback" not in res.stdout + res.stderr, res.stderr[-3000:]
    assert lines[-1].startswith("error: data.train: ") and name in lines[-1], lines
    assert len([ln for ln in lines if ln.startswith("error:")]) == 1
    assert time.time() - start < 60


# =============================================================== 5. the validation set is checked before training
def test_corrupt_validation_image_stops_the_run_before_the_first_iteration(sidd_lite, tmp_path, capsys):
    val = tmp_path / "val"
    shutil.copytree(sidd_lite / "SIDD_patches" / "val_mini", val)
    bad = sorted(os.listdir(val / "input"))[-1]
    (val / "input" / bad).write_bytes(b"not an image")
    code, out, err = run(train.main, _train_args(sidd_lite, tmp_path / "run", f"data.val.root={val}"), capsys)
    assert code == 2 and "iter:" not in out and shown(err)[-1].startswith("error: data.val: ") and bad in err
    assert not (tmp_path / "run").exists()  # nothing was written


def test_validation_failing_later_saves_a_resume_state_first(sidd_lite, tmp_path, capsys, monkeypatch):
    """The file breaks after the check (as a disk or a network share can): the run saves its state, says how to
    continue, and continues exactly from there once the file is back."""
    from utils.engine import Trainer

    val = tmp_path / "val"
    shutil.copytree(sidd_lite / "SIDD_patches" / "val_mini", val)
    name = sorted(os.listdir(val / "input"))[0]
    good = (val / "input" / name).read_bytes()
    real_check = Trainer._check_val_set

    def check_then_break(self):
        real_check(self)
        (val / "input" / name).write_bytes(b"broken after the check")

    monkeypatch.setattr(Trainer, "_check_val_set", check_then_break)
    args = _train_args(sidd_lite, tmp_path / "run", f"data.val.root={val}", "data.val.cache=false",
                       "train.stages=[{iters: 6, batch_size: 2, patch_size: 16}]", "val.freq=3",
                       "output.checkpoint_freq=100")
    code, _, err = run(train.main, args, capsys)
    line = shown(err)[-1]
    assert code == 2 and line.startswith("error: ") and name in line, line
    assert "saved a resume state first; resume from state_iter00000003.pdstates (iteration 3)" in line
    assert "--resume" in line and "stopped at iteration 3" in (tmp_path / "run" / "train.log").read_text()
    monkeypatch.setattr(Trainer, "_check_val_set", real_check)
    (val / "input" / name).write_bytes(good)
    code, out, _ = run(train.main, args + ["--resume"], capsys)
    assert code == 0 and "resuming at iteration 3" in out and "state_iter00000006.pdstates" in out


# =============================================================== 7. temporaries of killed processes are removed
def test_stale_temporaries_are_removed_and_live_ones_kept(made, photos, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [f".x.{dead.pid}-abcd1234.tmp.png", ".y.abcd_123.tmp.png", f".export.{dead.pid}-zzzz9999.tmp"]
    for name in stale[:2]:
        (out / name).write_bytes(b"half written")
    (out / stale[2]).mkdir()
    live = f".z.{os.getpid()}-abcd1234.tmp.png"  # a writer that is still running
    (out / live).write_bytes(b"being written")
    code, _, _ = run(predict.main, [photos, "--weights", made["MIRNet_v2"], "--save-dir", out], capsys)
    assert code == 0 and not set(stale) & set(os.listdir(out)) and live in os.listdir(out)
    assert clean_temporaries(str(out)) == []


# =============================================================== 9 / 10. one line for what the system refuses
UNWRITABLE_CASES = {
    "predict": lambda m, d: (predict.main, [m["root"] / "pairs" / "input", "--weights", m["MIRNet_v2"], "--save-dir",
                                            d / "out"]),
    "infer": lambda m, d: (infer.main, ["--model-dir", m["export"], "--save-dir", d / "out"]),
    "export": lambda m, d: (export_model.main, ["--weights", m["MIRNet_v2"], "--save-inference-dir", d / "out"]),
    "fold": lambda m, d: (fold_dae.main, ["--src", m["DAE_BN"], "--dst", d / "out" / "dae.pdparams"]),
    "sidd_eval": lambda m, d: (test_denoising_sidd.main, ["--weights", m["MIRNet_v2"], "--data-dir",
                                                          m["root"] / "pairs", "--result-dir", d / "out"]),
    "dmsp": lambda m, d: (restore_dmsp.main, ["--input", m["root"] / "pairs" / "input", "--weights", m["DAE"],
                                              "--kernel", m["root"] / "kernel.npy", "--output", d / "out"]),
}


@pytest.mark.parametrize("script", sorted(UNWRITABLE_CASES))
def test_unwritable_output_folder(made, unwritable, script, capsys):
    main, argv = UNWRITABLE_CASES[script](made, unwritable)
    one_line(capsys, main, argv, str(unwritable / "out"))


def test_unwritable_output_folder_of_training_and_patches(sidd_lite, unwritable, tmp_path, capsys):
    one_line(capsys, train.main, _train_args(sidd_lite, unwritable / "run"), "output.model_dir")
    one_line(capsys, generate_patches_SIDD.main, ["--src", sidd_lite / "SIDD_Medium_Srgb", "--dst", unwritable / "p",
                                                  "--ps", "32", "--num_patches", "1", "--num_cores", "1"], "--dst")


def test_unwritable_destination_of_the_converter_as_a_user_runs_it(official_pth, unwritable):
    res = script_run([os.path.join(ROOT, "tools", "convert_weights.py"), "--arch", "MIRNet_v2", "-o", "n_feat=16",
                      "-o", "n_MRB=1", "--src", official_pth, "--dst", unwritable / "w.pdparams"])
    assert res.returncode == 2 and shown(res.stderr) == [shown(res.stderr)[-1]]
    assert shown(res.stderr)[-1].startswith("error: ") and "Traceback" not in res.stderr


FILE_AS_FOLDER = {
    "predict --save-dir": lambda m, f: (predict.main, [m["root"] / "pairs" / "input", "--weights", m["MIRNet_v2"],
                                                       "--save-dir", f]),
    "infer --save-dir": lambda m, f: (infer.main, ["--model-dir", m["export"], "--save-dir", f]),
    "export --save-inference-dir": lambda m, f: (export_model.main, ["--weights", m["MIRNet_v2"],
                                                                     "--save-inference-dir", f]),
    "sidd --result-dir": lambda m, f: (test_denoising_sidd.main, ["--weights", m["MIRNet_v2"], "--data-dir",
                                                                  m["root"] / "pairs", "--result-dir", f]),
    "gopro --save-dir": lambda m, f: (test_deblurring_gopro.main, ["--weights", m["MIMOUNet"], "--data", f,
                                                                   "--save-dir", f]),
    "dmsp --output": lambda m, f: (restore_dmsp.main, ["--input", m["root"] / "pairs" / "input", "--weights", m["DAE"],
                                                       "--kernel", m["root"] / "kernel.npy", "--output", f]),
    "quantize --save-dir": lambda m, f: (quantize.main, ["--model-dir", m["export"], "--calib-dir",
                                                         m["root"] / "pairs" / "input", "--save-dir", f]),
    "patches --dst": lambda m, f: (generate_patches_SIDD.main, ["--src", m["root"], "--dst", f]),
    "gopro prep --root_dst": lambda m, f: (prepare_GoPro.main, ["--root_src", m["root"], "--root_dst", f]),
}


@pytest.mark.parametrize("case", sorted(FILE_AS_FOLDER))
@pytest.mark.parametrize("kind", ["existing file", "file name"])
def test_folder_option_given_a_file(made, tmp_path, case, kind, capsys):
    """An existing file, or a name like result.png, given where a folder goes: refused, nothing created."""
    target = tmp_path / "result.png"
    if kind == "existing file":
        target.write_bytes(b"a user's file")
    with unchanged(tmp_path):
        main, argv = FILE_AS_FOLDER[case](made, target)
        one_line(capsys, main, argv, str(target))
    assert target.exists() == (kind == "existing file")


def test_output_files_of_the_tools(made, tmp_path, capsys):
    """The tools' output files: a folder given as the file, or a file in a folder that cannot be made."""
    from tools import make_lite_data, model_card

    (tmp_path / "folder.json").mkdir()
    (tmp_path / "folder.npy").mkdir()
    (tmp_path / "afile").write_text("a user's file")
    one_line(capsys, model_card.main, ["--models", "DAE", "--sizes", "8x8", "--json", tmp_path / "folder.json"],
             "is a folder")
    one_line(capsys, benchmark_tool.main, ["--models", "DAE", "--json", tmp_path / "afile" / "b.json"], "afile")
    one_line(capsys, alignment_tool.main, ["record", "--weights", made["DAE"], "--out", tmp_path / "folder.npy"],
             "is a folder")
    one_line(capsys, make_lite_data.main, ["--task", "sidd", "--out", tmp_path / "afile"], "is a file")
    one_line(capsys, make_lite_data.main, ["--task", "sidd", "--out", tmp_path / "lite.zip"], "looks like a file name")
    assert sorted(os.listdir(tmp_path)) == ["afile", "folder.json", "folder.npy"]


@pytest.mark.parametrize("script", ["train_denoising_1card", "train_denoising_4cards"])
def test_recipe_scripts_name_a_bad_override(script, tmp_path, capsys):
    import importlib

    main = importlib.import_module(script).main
    one_line(capsys, main, ["--device", "cpu", "-o", f"output.model_dir={tmp_path}/m", "network.n_feat=abc"],
             "network.n_feat must be an integer")
    one_line(capsys, main, ["-o", "train.optimiser.lr=1"], "unknown config key 'train.optimiser.lr'")


def test_model_dir_named_like_a_file_is_refused(sidd_lite, tmp_path, capsys):
    one_line(capsys, train.main, _train_args(sidd_lite, tmp_path / "run.pdparams"), "output.model_dir",
             "looks like a file name")
    assert not (tmp_path / "run.pdparams").exists()


def test_corrupt_inference_yml(made, tmp_path, capsys):
    broken = tmp_path / "export"
    shutil.copytree(made["export"], broken)
    (broken / "inference.yml").write_text("model_name: MIRNet_v2\nnetwork: {name: [\n")
    one_line(capsys, infer.main, ["--model-dir", broken, "--save-dir", tmp_path / "o"], "inference.yml",
             "invalid YAML at line")
    (broken / "inference.yml").write_text("- a list\n- not a mapping\n")
    one_line(capsys, test_denoising_sidd.main, ["--model-dir", broken, "--data-dir", made["root"] / "pairs"],
             "inference.yml", "mapping")


@pytest.mark.parametrize("content, message", [(bytes(range(256)) * 4, "not a text (YAML) file"),
                                              (b"- 1\n- 2\n", "must be a mapping"),
                                              (b"network:\n  name: MIRNet_v2\n n_feat: 3\n", "at line 3"),
                                              (b"train: {stages: [1, 2}\n", "at line 1")])
def test_bad_config_files(made, sidd_lite, tmp_path, content, message, capsys):
    cfg = tmp_path / "cfg.yml"
    cfg.write_bytes(content)
    one_line(capsys, train.main, ["-c", cfg], message, str(cfg))
    one_line(capsys, predict.main, [made["root"] / "pairs" / "input", "--weights", made["MIRNet_v2"], "-c", cfg,
                                    "--save-dir", tmp_path / "o"], message)
    one_line(capsys, export_model.main, ["--weights", made["MIRNet_v2"], "-c", cfg, "--save-inference-dir",
                                         tmp_path / "e"], message)


def test_truncated_weights_and_states(made, official_pth, sidd_lite, tmp_path, capsys):
    data = open(made["MIRNet_v2"], "rb").read()
    cut = tmp_path / "cut.pdparams"
    cut.write_bytes(data[:len(data) // 2])
    shutil.copy(os.path.join(os.path.dirname(made["MIRNet_v2"]), "config.yml"), tmp_path / "config.yml")
    one_line(capsys, predict.main, [made["root"] / "pairs" / "input", "--weights", cut, "--save-dir", tmp_path / "o"],
             "truncated")
    one_line(capsys, export_model.main, ["--weights", cut, "--save-inference-dir", tmp_path / "e"], "truncated")
    pth = official_pth.read_bytes()
    for length in (len(pth) // 2, 20):
        official_pth.write_bytes(pth[:length])
        one_line(capsys, convert_weights.main, ["--arch", "MIRNet_v2", "--src", official_pth, "--dst",
                                                tmp_path / "w.pdparams"], "truncated")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "state_iter00000002.pdstates").write_bytes(data[:1000])
    one_line(capsys, train.main, _train_args(sidd_lite, run_dir) + ["--resume"], "truncated")


@pytest.mark.parametrize("override, message", [("network.n_feat=abc", "network.n_feat must be an integer"),
                                               ("network.chan_factor=[1]", "network.chan_factor must be a number"),
                                               ("network.n_feat=-4", "cannot build MIRNet_v2"),
                                               ("data.train.cache=3", "data.train.cache must be true or false"),
                                               ("output.overwrite=maybe", "output.overwrite must be true or false")])
def test_override_of_the_wrong_type_names_the_key(sidd_lite, tmp_path, override, message, capsys):
    one_line(capsys, train.main, _train_args(sidd_lite, tmp_path / "run", override), message)


def test_convert_weights_user_errors_exit_2_as_everywhere(tmp_path):
    script = os.path.join(ROOT, "tools", "convert_weights.py")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    for args in (["--arch", "MIRNet_v2", "--src", junk, "--dst", tmp_path / "o.pdparams"],
                 ["--arch", "MIRNet_v2", "--src", tmp_path / "none.pth", "--dst", tmp_path / "o.pdparams"],
                 ["--arch", "MIRNet_v2", "--src", junk, "--dst", tmp_path / "o.pdparams", "-o", "n_feat"],
                 ["--arch", "NoSuchNet", "--src", junk, "--dst", tmp_path / "o.pdparams"]):
        res = script_run([script] + args)
        assert res.returncode == 2 and len(shown(res.stderr)) == 1, res.stderr
        assert shown(res.stderr)[0].startswith("error: ") and "Traceback" not in res.stderr
    assert not (tmp_path / "o.pdparams").exists()


# =============================================================== 11. a network of another task is refused
def test_evaluation_refuses_a_network_of_another_task(made, sidd_lite, tmp_path, capsys):
    pairs = made["root"] / "pairs"
    one_line(capsys, test_denoising_sidd.main, ["--weights", made["MIMOUNet"], "--data-dir", pairs],
             "MIMOUNet is a deblurring network", "--any-task")
    code, out, _ = run(test_denoising_sidd.main, ["--weights", made["MIMOUNet"], "--data-dir", pairs, "--any-task",
                                                  "--result-dir", tmp_path / "r"], capsys)
    assert code == 0 and "PSNR" in out
    gopro = tmp_path / "gopro"
    shutil.copytree(pairs / "input", gopro / "blur")
    shutil.copytree(pairs / "groundtruth", gopro / "sharp")
    one_line(capsys, test_deblurring_gopro.main, ["--weights", made["MIRNet_v2"], "--data", gopro],
             "MIRNet_v2 is a denoising network")
    one_line(capsys, test_deblurring_gopro.main, ["--model-dir", made["export"], "--data", gopro],
             "MIRNet_v2 is a denoising network")  # an export records its task in inference.yml
    assert yaml.safe_load(open(os.path.join(made["export"], "inference.yml")))["task"] == "denoising"


def test_restoration_refuses_a_dmsp_prior_and_the_solver_a_restoration_network(made, tmp_path, capsys):
    pairs = made["root"] / "pairs"
    one_line(capsys, predict.main, [pairs / "input", "--weights", made["DAE"], "--save-dir", tmp_path / "o"],
             "DAE is a DMSP prior", "--any-task")
    code, _, _ = run(predict.main, [pairs / "input", "--weights", made["DAE"], "--save-dir", tmp_path / "o",
                                    "--any-task"], capsys)
    assert code == 0
    one_line(capsys, infer.main, ["--model-dir", made["export"], "--dmsp-task", "deblur", "--num-iter", "1",
                                  "--save-dir", tmp_path / "d"], "infer.py --dmsp-task")
    one_line(capsys, restore_dmsp.main, ["--input", pairs / "input", "--weights", made["MIRNet_v2"], "--kernel",
                                         made["root"] / "kernel.npy", "--output", tmp_path / "r"], "not a DMSP")


# =============================================================== 12. counts below 1 are refused
BATCH_ZERO = {
    "predict": lambda m, d: (predict.main, [m["root"] / "pairs" / "input", "--weights", m["MIRNet_v2"], "--save-dir",
                                            d, "--batch-size", "0"]),
    "infer": lambda m, d: (infer.main, ["--model-dir", m["export"], "--save-dir", d, "--batch-size", "0"]),
    "sidd": lambda m, d: (test_denoising_sidd.main, ["--weights", m["MIRNet_v2"], "--data-dir", m["root"] / "pairs",
                                                     "--batch-size", "0"]),
    "dmsp": lambda m, d: (restore_dmsp.main, ["--input", m["root"] / "pairs" / "input", "--weights", m["DAE"],
                                              "--kernel", m["root"] / "kernel.npy", "--output", d,
                                              "--batch-size", "0"]),
    "tile batch": lambda m, d: (predict.main, [m["root"] / "pairs" / "input", "--weights", m["MIRNet_v2"],
                                               "--save-dir", d, "--tile-batch", "0"]),
    "quantize": lambda m, d: (quantize.main, ["--model-dir", m["export"], "--calib-dir", m["root"] / "pairs" / "input",
                                              "--save-dir", d, "--calib-num", "0"]),
    "patches": lambda m, d: (generate_patches_SIDD.main, ["--src", m["root"], "--dst", d, "--num_patches", "0"]),
    "benchmark": lambda m, d: (benchmark_tool.main, ["--models", "MIRNet_v2", "--repeat", "0"]),
    "sidd limit": lambda m, d: (test_denoising_sidd.main, ["--weights", m["MIRNet_v2"], "--data-dir",
                                                           m["root"] / "pairs", "--limit", "-1"]),
}


@pytest.mark.parametrize("case", sorted(BATCH_ZERO))
def test_counts_below_one_are_refused(made, tmp_path, case, capsys):
    main, argv = BATCH_ZERO[case](made, tmp_path / "out")
    one_line(capsys, main, argv, "expected an integer >= 1")
    assert not (tmp_path / "out").exists()


# =============================================================== 13. one unreadable image among good ones
def _check_unreadable_report(code, err, broken, total):
    lines = shown(err)
    assert code == 2 and lines[-1].startswith(f"error: 1 of {total} image(s) could not be read"), lines
    assert [ln for ln in lines[:-1] if not ln.startswith("unreadable: ")] == [], lines
    assert len(lines) == 2 and str(broken) in lines[0]


@pytest.mark.parametrize("script", ["predict", "infer"])
def test_one_unreadable_image_among_good_ones(made, photos, tmp_path, script, capsys):
    broken = with_broken(photos, "a_broken.png")  # sorted first: the images after it must still be restored
    out = tmp_path / "out"
    argv = ([photos, "--weights", made["MIRNet_v2"]] if script == "predict" else
            ["--model-dir", made["export"], "--img-path", photos])
    with unchanged(photos):
        code, stdout, err = run(predict.main if script == "predict" else infer.main, argv + ["--save-dir", out],
                                capsys)
    _check_unreadable_report(code, err, broken, 4)
    assert sorted(f for f in os.listdir(out) if f.endswith(".png")) == ["x.png", "x_jpg.png", "y.png"]
    assert "restored 3 image(s)" in stdout


def test_one_unreadable_pair_in_an_evaluation_and_in_dmsp(made, tmp_path, capsys):
    pairs = tmp_path / "pairs"
    shutil.copytree(made["root"] / "pairs", pairs)
    broken = with_broken(pairs / "input", "p1.png")
    code, out, err = run(test_denoising_sidd.main, ["--weights", made["MIRNet_v2"], "--data-dir", pairs,
                                                    "--result-dir", tmp_path / "r"], capsys)
    _check_unreadable_report(code, err, broken, 3)
    assert "(2 blocks" in out
    code, out, err = run(restore_dmsp.main, ["--input", pairs / "input", "--weights", made["DAE"], "--kernel",
                                             made["root"] / "kernel.npy", "--num-iter", "1", "--output",
                                             tmp_path / "d"], capsys)
    _check_unreadable_report(code, err, broken, 3)
    assert sorted(os.listdir(tmp_path / "d")) == ["p0.png", "p2.png", "restore_dmsp.log"]


def test_unreadable_image_report_is_not_glued_to_a_progress_bar(made, photos, tmp_path):
    """As a user runs it: the bar is drawn on stderr, and the lines after it start on lines of their own."""
    with_broken(photos)
    res = script_run([os.path.join(ROOT, "predict.py"), photos, "--weights", made["MIRNet_v2"], "--save-dir",
                      tmp_path / "out"], terminal=True)
    _check_unreadable_report(res.returncode, res.stderr, photos / "broken.png", 4)
    assert "restoring" in res.stderr  # a bar was drawn, and cleared
