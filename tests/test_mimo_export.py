"""MIMO-UNet in an exported static graph (legacy .pdmodel format) under Paddle Inference with oneDNN: all three
outputs equal dygraph on an odd size (run-time padding, slicing downsamples, broadcast upsamples)."""
import json
import os
import subprocess
import sys

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
spec = [paddle.static.InputSpec([None, 3, None, None], "float32")]
paddle.jit.save(paddle.jit.to_static(net, input_spec=spec, full_graph=True), os.path.join(sys.argv[2], "inference"))
cfg = inference.Config(os.path.join(sys.argv[2], "inference.pdmodel"), os.path.join(sys.argv[2], "inference.pdiparams"))
cfg.disable_gpu(); cfg.enable_mkldnn(); cfg.enable_memory_optim(); cfg.disable_glog_info()
pred = inference.create_predictor(cfg)
x = np.random.RandomState(0).rand(1, 3, 61, 97).astype("float32")
h = pred.get_input_handle(pred.get_input_names()[0]); h.reshape(x.shape); h.copy_from_cpu(x); pred.run()
outs = [pred.get_output_handle(n).copy_to_cpu() for n in pred.get_output_names()]
with paddle.no_grad():
    ref = [o.numpy() for o in net(paddle.to_tensor(x))]
diff = [float(np.abs(a - b).max()) for a, b in zip(outs, ref)]
print(json.dumps({"shapes": [list(o.shape) for o in outs], "diff": diff}))
"""


def test_legacy_export_with_onednn_matches_dygraph(tmp_path):
    env = dict(os.environ, FLAGS_enable_pir_api="0", GLOG_minloglevel="2")
    res = subprocess.run([sys.executable, "-c", SCRIPT, ROOT, str(tmp_path)], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["shapes"] == [[1, 3, 16, 25], [1, 3, 31, 49], [1, 3, 61, 97]]
    assert max(out["diff"]) < 1e-5, out
    assert os.path.isfile(tmp_path / "inference.pdmodel")
