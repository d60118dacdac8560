#!/bin/bash
# TIPC on Ascend NPUs: the chain of test_train_inference_python.sh with its GPU settings mapped to NPUs
# (Paddle with the paddle-custom-npu plugin; see docs/devices.md).
#
#   bash test_tipc/prepare.sh CONFIG MODE
#   bash test_tipc/test_train_inference_python_npu.sh CONFIG MODE
#
# Rewritten copies of CONFIG and of the main script (with common_func.sh beside it) go to test_tipc/output/npu/
# and the copies run; the originals stay as they are.  The rewrite:
#   config  keys use_gpu / use-gpu -> use_npu / use-npu (True/False values stay: the scripts take --use-npu);
#           the word gpu in values -> npu (--device:gpu, device=gpu); use_tensorrt values -> False;
#           gpu_list keeps its card ids (paddle.distributed.launch --gpus / --devices number NPUs the same way).
#   script  "gpu" -> "npu" in its comparisons, CUDA_VISIBLE_DEVICES -> ASCEND_RT_VISIBLE_DEVICES.
# Environment: TIPC_NPU_REWRITE_ONLY=1 writes the copies, prints their paths and runs nothing (no NPU needed);
# TIPC_MAIN_SCRIPT (default test_tipc/test_train_inference_python.sh), TIPC_NPU_OUT (default
# test_tipc/output/npu), PYTHON (default python) override the defaults.
set -o pipefail

FILENAME=$1
MODE=$2
MAIN=${TIPC_MAIN_SCRIPT:-test_tipc/test_train_inference_python.sh}
OUT=${TIPC_NPU_OUT:-test_tipc/output/npu}
PY=${PYTHON:-python}

if [ -z "${FILENAME}" ] || [ -z "${MODE}" ]; then
    echo "usage: bash $0 CONFIG MODE (lite_train_lite_infer | lite_train_whole_infer | whole_infer |" \
         "whole_train_whole_infer)" >&2
    exit 2
fi
for f in "${FILENAME}" "${MAIN}"; do
    if [ ! -f "${f}" ]; then
        echo "error: ${f} not found" >&2
        exit 2
    fi
done

mkdir -p "${OUT}"
CONFIG_NPU="${OUT}/$(basename "${FILENAME%.txt}")_npu.txt"
MAIN_NPU="${OUT}/$(basename "${MAIN}")"

sed -E \
    -e 's/(^|[^A-Za-z0-9])use([-_])gpu/\1use\2npu/g' \
    -e 's/\bgpu\b/npu/g' \
    -e 's/^([^:]*use[-_]tensorrt[^:]*):.*$/\1:False/' \
    "${FILENAME}" > "${CONFIG_NPU}"
sed -e 's/"gpu"/"npu"/g' -e 's/CUDA_VISIBLE_DEVICES/ASCEND_RT_VISIBLE_DEVICES/g' "${MAIN}" > "${MAIN_NPU}"
if [ -f "$(dirname "${MAIN}")/common_func.sh" ]; then
    cp "$(dirname "${MAIN}")/common_func.sh" "${OUT}/common_func.sh"
fi

if [ "${TIPC_NPU_REWRITE_ONLY:-0}" = "1" ]; then
    echo "${CONFIG_NPU}"
    echo "${MAIN_NPU}"
    exit 0
fi

if ! ${PY} -c "import sys, paddle; sys.exit(0 if 'npu' in paddle.device.get_all_custom_device_type() else 1)" \
        2>/dev/null; then
    echo "error: this Paddle has no npu device: install paddle-custom-npu over the CPU paddlepaddle on a machine" \
         "with CANN (docs/devices.md)" >&2
    exit 1
fi
bash "${MAIN_NPU}" "${CONFIG_NPU}" "${MODE}"
