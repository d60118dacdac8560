"""tools/benchmark.py: records and JSON schema on a tiny model; a backend that cannot run gives an error record."""
import json

from tools import benchmark
from utils.benchmark import RECORD_KEYS


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
