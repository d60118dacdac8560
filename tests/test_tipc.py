"""TIPC chain configs and scripts: the line map of every config, the files and keys it names, the shell helpers,
and a chain broken on purpose (it must fail fast, say so in its results log and exit non-zero).

The real chains take minutes and run outside pytest (.ci/run); only failures that stop at the first step run here.
"""
import glob
import os
import subprocess
import sys

import pytest

from conftest import ROOT

TIPC = os.path.join(ROOT, "test_tipc")
MODES = ("lite_train_lite_infer", "lite_train_whole_infer", "whole_infer", "whole_train_whole_infer")
TRAIN_MODES = ("lite_train_lite_infer", "lite_train_whole_infer", "whole_train_whole_infer")
TRAIN_CONFIGS = sorted(glob.glob(os.path.join(TIPC, "configs", "*", "train*_infer_python.txt")))
ONNX_CONFIGS = sorted(glob.glob(os.path.join(TIPC, "configs", "*", "paddle2onnx_infer_python.txt")))
MIRNET = os.path.join(TIPC, "configs", "MIRNet_V2", "train_infer_python.txt")

# 1-based line -> what it must start with (the 32-line paper-reproduction format)
TRAIN_LINE_MAP = {1: "=", 2: "model_name:", 3: "python:", 4: "gpu_list:", 10: "train_model_name:", 12: "##",
                  13: "trainer:", 15: "##", 16: "=", 17: "eval:", 18: "##", 19: "=", 22: "norm_export:", 23: "##",
                  24: "train_model:", 25: "infer_export:", 26: "##", 27: "inference:"}
ONNX_LINE_MAP = {1: "=", 2: "model_name:", 3: "python:", 4: "2onnx:", 11: "inference:"}


def _rel(path):
    return os.path.relpath(path, ROOT)


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")


def key_value(line):
    key, _, value = line.partition(":")
    return key.strip(), value.strip()


def mode_value(value, mode):
    """The shell's func_parser_params: the MODE entry of a per-mode value, 'null' when absent, else the value."""
    items = value.split("|")
    per_mode = [i for i in items if i.split("=", 1)[0] in MODES]
    if not per_mode:
        return value
    for item in per_mode:
        if item.startswith(mode + "="):
            return item[len(mode) + 1:]
    return "null"


def set_param(key, value):
    return "" if key in ("", "null") or value in ("", "null") else f"{key}={value}"


def bash(script, env=None):
    return subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="session")
def lite_root(tmp_path_factory):
    """Every lite data set, made once, to check the data paths the configs name."""
    from dataloaders.prepare.lite_data import LITE_TASKS

    root = tmp_path_factory.mktemp("lite_all")
    for make in LITE_TASKS.values():
        make(str(root), 0)
    return root


def test_configs_exist_for_every_model():
    models = {os.path.basename(os.path.dirname(p)) for p in TRAIN_CONFIGS}
    assert {"MIRNet_V2", "MIMO_UNet", "DMSP"} <= models
    for model in models:
        assert os.path.isfile(os.path.join(TIPC, "configs", model, "train_infer_python.txt")), model


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=_rel)
def test_train_config_line_map(path):
    lines = read_lines(path)
    assert len(lines) == 32, f"{_rel(path)} has {len(lines)} lines, the format has 32"
    assert all(line.strip() for line in lines), "blank lines shift every index"
    for number, start in TRAIN_LINE_MAP.items():
        assert lines[number - 1].startswith(start), f"line {number} should start with {start!r}: {lines[number - 1]!r}"
    assert "train_params" in lines[0] and "eval_params" in lines[15] and "infer_params" in lines[18]
    assert key_value(lines[1])[1] == os.path.basename(os.path.dirname(path)), "model_name = its folder's name"
    assert key_value(lines[13])[0] == key_value(lines[12])[1], "line 14 is the command of the trainer on line 13"
    for number in (6, 8, 9, 11, 31, 32):
        for item in key_value(lines[number - 1])[1].split("|"):
            head = item.split("=", 1)[0]
            if "=" in item and head.endswith("_infer"):
                assert head in MODES, f"line {number}: unknown mode {head!r}"
    for number in (6, 8):  # iterations and batch size are given for every training mode or for none
        value = key_value(lines[number - 1])[1]
        if any(value.startswith(m + "=") for m in MODES):
            assert {i.split("=", 1)[0] for i in value.split("|")} >= set(TRAIN_MODES), f"line {number}: {value}"


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=_rel)
def test_train_config_scripts_and_keys_exist(path):
    from utils.config import load_config
    from utils.engine import resolve_config

    lines = read_lines(path)
    value = {n: key_value(lines[n - 1])[1] for n in range(1, 33)}
    key = {n: key_value(lines[n - 1])[0] for n in range(1, 33)}
    for number in (14, 17, 22, 25, 27):
        if value[number] != "null":
            script = value[number].split()[0]
            assert os.path.isfile(os.path.join(ROOT, script)), f"line {number}: {script} not found"
    train = value[14].split()
    assert "-c" in train and train[-1] != "-c"
    config = train[train.index("-c") + 1]
    assert os.path.isfile(os.path.join(ROOT, config)), f"line 14: {config} not found"
    assert train[train.index("-c") + 2] == "-o", "line 14 ends with -o so that the chain's overrides follow"
    fixed = [t.replace("${TIPC_RUN_DIR}", "/tmp/run") for t in train[train.index("-o") + 1:]]
    for mode in TRAIN_MODES:  # every override the chain adds must name a key of the training config
        extra = [set_param(key[n], mode_value(value[n], mode)) for n in (6, 8, 11)]
        extra.append(set_param(key[7], "/tmp/run"))
        cfg = load_config(os.path.join(ROOT, config), fixed + [e for e in extra if e])
        resolve_config(cfg)
    assert value[24].startswith(("./pretrained_models/", "pretrained_models/"))
    assert os.path.basename(value[24]) in open(os.path.join(TIPC, "prepare.sh")).read(), \
        "prepare.sh explains how to convert the whole_infer weights"


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=_rel)
def test_train_config_data_paths_exist_in_lite_data(path, lite_root):
    lines = read_lines(path)
    paths = []
    for number in (11, 17, 31):
        for mode in MODES:
            for token in mode_value(key_value(lines[number - 1])[1], mode).split():
                token = token.split("=", 1)[-1]
                if token.startswith("data/lite/"):
                    paths.append(token)
    assert paths, "the chain reads the lite data"
    for p in set(paths):
        assert glob.glob(os.path.join(str(lite_root), p[len("data/lite/"):])), f"{p} is not in the lite data"


@pytest.mark.parametrize("path", ONNX_CONFIGS, ids=_rel)
def test_paddle2onnx_config(path):
    lines = read_lines(path)
    assert len(lines) == 13 and all(line.strip() for line in lines)
    for number, start in ONNX_LINE_MAP.items():
        assert lines[number - 1].startswith(start), f"line {number} should start with {start!r}"
    model = key_value(lines[1])[1]
    assert model == os.path.basename(os.path.dirname(path))
    model_dir = key_value(lines[4])[1]
    assert f"test_tipc/output/{model}/lite_train_lite_infer/" in model_dir, "converts the model's lite chain export"
    assert key_value(lines[5])[1] == "inference.pdmodel" and key_value(lines[8])[1] == "13"
    assert os.path.isfile(os.path.join(ROOT, key_value(lines[10])[1].split()[0]))
    assert "--backend onnx" in key_value(lines[10])[1]


def test_parser_helpers():
    out = bash("source test_tipc/common_func.sh; "
               "l='train.max_iters:lite_train_lite_infer=20|whole_train_whole_infer=null'; "
               "echo \"[$(func_parser_key \"$l\")]\"; "
               "echo \"[$(func_parser_params \"$l\" lite_train_lite_infer)]\"; "
               "echo \"[$(func_parser_params \"$l\" whole_train_whole_infer)]\"; "
               "echo \"[$(func_parser_params \"$l\" lite_train_whole_infer)]\"; "
               "echo \"[$(func_parser_params 'norm_train: train.py -c a.yml -o x=1|y ' whole_infer)]\"; "
               "echo \"[$(func_parser_value 'url:http://a:b ')]\"; "
               "echo \"[$(func_set_params --weights null)][$(func_set_params null 3)][$(func_set_params -k v)]\"")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:7] == ["[train.max_iters]", "[20]", "[null]", "[null]",
                                          "[train.py -c a.yml -o x=1|y]", "[http://a:b]", "[][][-k=v]"]


def _copy_config(tmp_path, replace=None, insert_blank_after=None, python=True):
    lines = read_lines(MIRNET)
    if python:  # the interpreter running these tests, whatever is first on PATH
        lines[2] = f"python:{sys.executable}"
    for old, new in (replace or {}).items():
        lines = [line.replace(old, new) for line in lines]
    if insert_blank_after:
        lines.insert(insert_blank_after, "")
    path = tmp_path / "train_infer_python.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _env(tmp_path):
    return dict(os.environ, TIPC_OUTPUT=str(tmp_path / "out"))


def test_broken_chain_fails_fast_and_exits_nonzero(tmp_path):
    cfg = _copy_config(tmp_path, {"configs/mirnet_v2_lite.yml": "configs/no_such_config.yml"})
    run = bash(f"bash test_tipc/test_train_inference_python.sh {cfg} lite_train_lite_infer", env=_env(tmp_path))
    assert run.returncode == 1, run.stdout + run.stderr
    results = (tmp_path / "out" / "MIRNet_V2" / "lite_train_lite_infer" / "results_python.log").read_text()
    assert "Run failed with command - " in results and "configs/no_such_config.yml" in results
    assert "Run successfully" not in results
    assert "skipped: evaluation, export and inference" in results  # nothing runs on weights that do not exist
    train_log = (tmp_path / "out" / "MIRNet_V2" / "lite_train_lite_infer" / "norm_train_gpus_-1_train.log")
    assert "error:" in train_log.read_text() and "no_such_config" in train_log.read_text()
    assert "1 step(s) failed" in run.stdout


def test_shifted_lines_and_bad_mode_are_refused_before_running(tmp_path):
    cfg = _copy_config(tmp_path, insert_blank_after=5)
    run = bash(f"bash test_tipc/test_train_inference_python.sh {cfg} lite_train_lite_infer", env=_env(tmp_path))
    assert run.returncode == 2 and "line 12 of" in run.stderr and "should contain '##'" in run.stderr
    run = bash(f"bash test_tipc/test_train_inference_python.sh {MIRNET} lite_train", env=_env(tmp_path))
    assert run.returncode == 2 and "unknown mode 'lite_train'" in run.stderr
    run = bash(f"bash test_tipc/test_train_inference_python.sh {tmp_path}/none.txt whole_infer", env=_env(tmp_path))
    assert run.returncode == 2 and "config file not found" in run.stderr
    assert not (tmp_path / "out").exists(), "nothing ran"


def test_prepare_whole_infer_says_how_to_convert_missing_weights(tmp_path):
    missing = tmp_path / "pretrained" / "MIRNet_v2_real_denoising.pdparams"
    cfg = _copy_config(tmp_path, {"./pretrained_models/MIRNet_v2_real_denoising.pdparams": str(missing)})
    run = bash(f"bash test_tipc/prepare.sh {cfg} whole_infer")
    assert run.returncode == 1
    assert str(missing) in run.stderr and "real_denoising.pth" in run.stderr
    assert f"tools/convert_weights.py --arch MIRNet_v2 --src /path/to/real_denoising.pth --dst {missing}" in run.stderr


def test_scripts_parse():
    for script in glob.glob(os.path.join(TIPC, "*.sh")):
        assert bash(f"bash -n {script}").returncode == 0, script


# output flag of each script the chains run, for the scripts that write by default
OUTPUT_FLAGS = {"test_denoising_sidd.py": "--result-dir", "restore_dmsp.py": "--output", "infer.py": "--save-dir",
                "test_deblurring_gopro.py": "--save-dir"}


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=_rel)
def test_train_config_runs_under_the_standard_harness(path):
    """The standard harness of Paddle's paper-reproduction template defines no ${TIPC_RUN_DIR} and splits lines
    at every colon: the commands use no variable and no colon, training writes only into the run folder the
    harness passes (VisualDL beside the weights, a re-run replaces the folder's earlier run), and every other
    output lies under ./test_tipc/output/<model>/."""
    lines = read_lines(path)
    model = key_value(lines[1])[1]
    for number in (14, 17, 27):
        value = lines[number - 1].split(":", 1)[1]
        assert "$" not in value and ":" not in value, f"line {number}: {value}"
    train = key_value(lines[13])[1].split()
    assert "output.log_dir=null" in train and "output.overwrite=true" in train
    for number in (17, 27):
        tokens = key_value(lines[number - 1])[1].split()
        flag = OUTPUT_FLAGS.get(os.path.basename(tokens[0]))
        if flag and (flag in tokens or tokens[0] != "test_deblurring_gopro.py"):
            assert flag in tokens, f"line {number}: {tokens[0]} writes to its default folder; give {flag}"
            assert tokens[tokens.index(flag) + 1].startswith(f"./test_tipc/output/{model}/"), tokens
