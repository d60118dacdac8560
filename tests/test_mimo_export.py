"""MIMO-UNet in an exported static graph (legacy .pdmodel format) under Paddle Inference with oneDNN: all three
outputs equal dygraph on an odd size (run-time padding, slicing downsamples, broadcast upsamples)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPT = r"""
import json, os, sys, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, sys.argv[1])
import numpy as np, paddle
from paddle import inference
from networks import build_network
paddle.seed(0)
net = build_network({"name": "MIMOUNet", "num_res": 1}); net.eval()
if sys.argv[3] == "installed":  # after a CPU training step in the same process (its kernels stay installed)
    from utils.engine import onednn
    onednn.install(net)
spec = [paddle.static.InputSpec([None, 3, None, None], "float32")]
paddle.jit.save(paddle.jit.to_static(net, input_spec=spec, full_graph=True), os.path.join(sys.argv[2], "inference"))
from utils.deploy.runners import predictor_config
cfg, _ = predictor_config(sys.argv[2])  # the repository's Paddle Inference set-up for either program format
pred = inference.create_predictor(cfg)
x = np.random.RandomState(0).rand(1, 3, 61, 97).astype("float32")
h = pred.get_input_handle(pred.get_input_names()[0]); h.reshape(x.shape); h.copy_from_cpu(x); pred.run()
outs = [pred.get_output_handle(n).copy_to_cpu() for n in pred.get_output_names()]
with paddle.no_grad():
    ref = [o.numpy() for o in net(paddle.to_tensor(x))]
diff = [float(np.abs(a - b).max()) for a, b in zip(outs, ref)]
print(json.dumps({"shapes": [list(o.shape) for o in outs], "diff": diff}))
"""


@pytest.mark.parametrize("pir,routed", [("0", "plain"), ("0", "installed"), ("1", "installed")])
def test_export_with_onednn_matches_dygraph(tmp_path, pir, routed):
    """Legacy and PIR programs; "installed": traced after the oneDNN training kernels were installed in the
    process (a training benchmark, then an export)."""
    env = dict(os.environ, FLAGS_enable_pir_api=pir, GLOG_minloglevel="2")
    res = subprocess.run([sys.executable, "-c", SCRIPT, ROOT, str(tmp_path), routed], capture_output=True, text=True,
                         env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["shapes"] == [[1, 3, 16, 25], [1, 3, 31, 49], [1, 3, 61, 97]]
    assert max(out["diff"]) < 1e-5, out
    assert os.path.isfile(tmp_path / ("inference.pdmodel" if pir == "0" else "inference.json"))
