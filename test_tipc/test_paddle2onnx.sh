#!/usr/bin/env bash
# Paddle2ONNX chain: convert an exported (legacy .pdmodel) model to ONNX with the paddle2onnx CLI, restore
# images with ONNX Runtime (infer.py --backend onnx), restore the same images with Paddle Inference and check
# that both outputs agree.
#
#   bash test_tipc/prepare.sh test_tipc/configs/MIRNet_V2/paddle2onnx_infer_python.txt paddle2onnx_infer
#   bash test_tipc/test_paddle2onnx.sh test_tipc/configs/MIRNet_V2/paddle2onnx_infer_python.txt
#
# Results go to test_tipc/output/<model_name>/paddle2onnx_infer/results_paddle2onnx.log ("Run successfully /
# Run failed with command - ..." lines).  Exit status 0 when every step passed, 1 otherwise, 2 for a bad config.
# Needs paddle2onnx 1.3.1, onnx and onnxruntime: pip install -r requirements-deploy.txt
set -f

if [ $# -lt 1 ]; then
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
CONFIG=$(realpath -m "$1")
MODE=${2:-paddle2onnx_infer}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT" || exit 2
source test_tipc/common_func.sh

func_read_config "$CONFIG" 13 || exit 2
func_expect_line 1 "paddle2onnx_params" "$CONFIG" || exit 2
func_expect_line 11 "inference:" "$CONFIG" || exit 2
L=("" "${CONFIG_LINES[@]}")
model_name=$(func_parser_value "${L[2]}")
python=$(func_parser_value "${L[3]}")
paddle2onnx_cmd=$(func_parser_value "${L[4]}")
model_dir_key=$(func_parser_key "${L[5]}")
model_dir=$(func_parser_value "${L[5]}")
model_file_key=$(func_parser_key "${L[6]}")
model_file=$(func_parser_value "${L[6]}")
params_file_key=$(func_parser_key "${L[7]}")
params_file=$(func_parser_value "${L[7]}")
save_file_key=$(func_parser_key "${L[8]}")
save_file=$(func_parser_value "${L[8]}")
opset_key=$(func_parser_key "${L[9]}")
opset=$(func_parser_value "${L[9]}")
checker_key=$(func_parser_key "${L[10]}")
checker=$(func_parser_value "${L[10]}")
inference_py=$(func_parser_value "${L[11]}")
onnx_model_key=$(func_parser_key "${L[12]}")
img_key=$(func_parser_key "${L[13]}")
img_value=$(func_parser_params "${L[13]}" "lite_train_lite_infer")
# Largest allowed absolute difference between the ONNX Runtime and the Paddle Inference outputs.
threshold=${TIPC_ONNX_THRESHOLD:-1e-5}

LOG_PATH="${TIPC_OUTPUT:-test_tipc/output}/${model_name}/${MODE}"
mkdir -p "$LOG_PATH" "$(dirname "$save_file")"
status_log="${LOG_PATH}/results_paddle2onnx.log"
export TIPC_RUN_DIR="$LOG_PATH"
echo "TIPC ${model_name} paddle2onnx: results in ${status_log}"

cmd="${paddle2onnx_cmd} $(func_set_params "$model_dir_key" "$model_dir") $(func_set_params "$model_file_key" "$model_file")"
cmd+=" $(func_set_params "$params_file_key" "$params_file") $(func_set_params "$save_file_key" "$save_file")"
cmd+=" $(func_set_params "$opset_key" "$opset") $(func_set_params "$checker_key" "$checker")"
func_run_step "$cmd" "$status_log" "${LOG_PATH}/paddle2onnx_convert.log"

onnx_outputs="${LOG_PATH}/outputs_onnx.npy"
cmd="${python} ${inference_py} $(func_set_params "$onnx_model_key" "$save_file") $(func_set_params "$img_key" "$img_value")"
cmd+=" --reprod-log=${onnx_outputs}"
func_run_step "$cmd" "$status_log" "${LOG_PATH}/paddle2onnx_infer_cpu.log"

# The same images through Paddle Inference on the exported model, then the outputs compared.
paddle_outputs="${LOG_PATH}/outputs_paddle.npy"
cmd="${python} infer.py --use-gpu=False --model-dir=${model_dir} $(func_set_params "$img_key" "$img_value")"
cmd+=" --save-dir=${LOG_PATH}/infer_paddle --reprod-log=${paddle_outputs}"
func_run_step "$cmd" "$status_log" "${LOG_PATH}/paddle_infer_cpu.log"
cmd="${python} tools/alignment.py compare ${onnx_outputs} ${paddle_outputs} --threshold ${threshold}"
func_run_step "$cmd" "$status_log" "${LOG_PATH}/compare_onnx_paddle.log"

if [ "$TIPC_FAILED" -gt 0 ]; then
    echo "TIPC ${model_name} paddle2onnx: ${TIPC_FAILED} step(s) failed, ${TIPC_PASSED} passed (see ${status_log})"
    exit 1
fi
echo "TIPC ${model_name} paddle2onnx: all ${TIPC_PASSED} step(s) passed"
