"""tools/benchmark.py: records and JSON schema on a tiny model; a backend that cannot run gives an error record."""
import json
import os

import pytest

from tools import benchmark
from utils.cli import run_main
from utils.deploy.benchmark import RECORD_KEYS


def test_benchmark_records_and_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    records = benchmark.main(["--models", "MIRNet_v2", "-o", "MIRNet_v2.n_feat=16", "-o", "MIRNet_v2.n_MRB=1",
                              "--backends", "dygraph", "no_such_backend", "--size", "24", "20", "--repeat", "2",
                              "--warmup", "0", "--tile", "16", "--tile-overlap", "4", "--json", str(path)])
    saved = json.loads(path.read_text())
    assert saved == json.loads(json.dumps(records)) and len(saved) == 2
    ok, bad = saved
    assert set(RECORD_KEYS) <= set(ok) and "error" not in ok, ok
    assert (ok["model"], ok["backend"], ok["precision"], ok["height"], ok["width"], ok["threads"]) == (
        "MIRNet_v2", "dygraph", "fp32", 24, 20, 2)
    assert 0 < ok["min_s"] <= ok["median_s"] and ok["load_s"] > 0 and 50 < ok["peak_rss_mb"] < 4000
    assert ok["tile"] == 16 and ok["machine"]["cores"] >= 1
    assert set(RECORD_KEYS) <= set(bad) and "no_such_backend" in bad["error"] and bad["median_s"] is None
    assert "peak_rss_mb" in capsys.readouterr().out


def _record(model, backend, **extra):
    rec = {"model": model, "backend": backend, "precision": "fp32", "height": 64, "width": 48, "threads": 2,
           "median_s": 0.5, "min_s": 0.4, "load_s": 1.0, "peak_rss_mb": 300.0, "mpix_per_s": 0.006,
           "device": "Paddle Inference: x", "machine": {"cpu": "Test CPU", "cores": 2, "flags": ["avx2"],
                                                        "python": "3", "paddle": "3.3.1"}}
    rec.update(extra)
    return rec


def test_markdown_from_several_json_files(tmp_path, capsys):
    a, b, md = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "perf.md"
    a.write_text(json.dumps([_record("MIRNet_v2", "inference", engine="openvino", pct_peak=1.3)]))
    b.write_text(json.dumps([_record("MIMOUNet", "bf16", median_s=None, error="needs a CPU with AMX"),
                             _record("MIRNet_v2", "train", images_per_s=1.5, reader_share=0.031, batch_size=8,
                                     patch_size=128, num_workers=8)]))
    records = benchmark.main(["--from-json", str(a), str(b), "--markdown", str(md)])
    assert [r["backend"] for r in records] == ["inference", "bf16", "train"]
    text = md.read_text()
    assert text.startswith("Measured on: Test CPU, 2 cores") and text.count("\n|") == 5  # header, rule, 3 rows
    assert "| MIRNet_v2 | inference | openvino | fp32 | 64 x 48 | 2 | 0.5 | 0.4 | 0.006 | 1.3 | 1.0 | 300.0 |" in text
    assert "needs a CPU with AMX" in text and "reader 3.1 % of each iteration" in text
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": 1}')
    with pytest.raises(SystemExit):
        run_main(benchmark.main, ["--from-json", str(bad)])
    assert "is not a list of benchmark records" in capsys.readouterr().err


def test_inference_records_name_the_engine_and_the_flop_rate():
    from networks import build_network
    from utils.deploy.model_card import macs_at
    from utils.deploy.runners import openvino_module

    cfg = {"n_feat": 16, "n_MRB": 1}
    default, onednn = benchmark.main(["--models", "MIRNet_v2", "-o", "MIRNet_v2.n_feat=16", "-o", "MIRNet_v2.n_MRB=1",
                                      "--backends", "inference", "onednn", "--size", "21", "19", "--repeat", "1",
                                      "--warmup", "0", "--peak-gflops", "100"])
    assert default["engine"] == ("openvino" if openvino_module() else "paddle-openvino")
    assert onednn["engine"] == "paddle"
    assert "oneDNN" in onednn["device"] and default["machine"]["peak_gflops"] == 100
    gflop = 2 * macs_at(build_network({"name": "MIRNet_v2", **cfg}), 21, 19) / 1e9
    for rec in (default, onednn):
        assert rec["gflop"] == round(gflop, 2) and rec["pct_peak"] == round(gflop / rec["median_s"], 1)


def test_time_limit_gives_error_record_with_memory(capsys):
    (rec,) = benchmark.main(["--models", "MIRNet_v2", "-o", "MIRNet_v2.n_feat=16", "-o", "MIRNet_v2.n_MRB=1",
                             "--backends", "dygraph", "--size", "24", "20", "--timeout", "0.5"])
    assert "time limit" in rec["error"] and rec["median_s"] is None and rec["peak_rss_mb"] > 0
    assert "time limit" in capsys.readouterr().out


def test_train_backend_runs_with_the_threads_it_records(tmp_path, monkeypatch):
    """The training engine takes every core; the train worker sets the record's thread count after building it."""
    import paddle

    from utils import engine
    from utils.deploy import benchmark as bm

    calls = []

    class FakeTrainer:
        def __init__(self, cfg, device):
            calls.append(("build", device))
            self.log = os.path.join(cfg["output"]["model_dir"], "train.log")
            self.steps = []

        def train_step(self, inp, target):
            self.steps.append(inp)
            return 0.25

        def fit(self):
            os.makedirs(os.path.dirname(self.log), exist_ok=True)
            with open(self.log, "w", encoding="utf-8") as f:
                for i in range(3):
                    assert self.train_step(i, None) == 0.25  # the worker's timed wrapper returns the loss
                    f.write("iter: 1/3, avg_reader_cost: 0.0010 sec, avg_batch_cost: 0.5000 sec\n")

    monkeypatch.setattr(engine, "Trainer", FakeTrainer)
    monkeypatch.setattr(paddle.base.core, "set_num_threads", lambda n: calls.append(("threads", n)))
    spec = {"model": "MIRNet_v2", "backend": "train", "threads": 1, "warmup": 1, "repeat": 2,
            "folder": str(tmp_path), "train_data": str(tmp_path)}
    rec = bm.train_worker(spec)
    assert calls == [("build", "cpu"), ("threads", 1)]
    # median_s is the optimizer step's own time (a no-op here), not the logged iteration cost
    assert 0 <= rec["median_s"] < 0.1 and rec["reader_share"] == pytest.approx(0.002)
    assert rec["train_step"] == "dygraph" and rec["loss"] == "L1Loss" and rec["height"] == rec["width"]
