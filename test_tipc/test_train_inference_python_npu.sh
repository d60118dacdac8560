#!/bin/bash
# TIPC on Ascend NPUs: test_train_inference_python.sh on a copy of a chain config whose device settings are
# mapped to NPUs (Paddle with the paddle-custom-npu plugin; see docs/devices.md).
#
#   bash test_tipc/prepare.sh CONFIG MODE
#   bash test_tipc/test_train_inference_python_npu.sh CONFIG MODE
#
# The copy goes to test_tipc/output/npu/<config name>_npu.txt; CONFIG itself is not touched.  The mapping (line
# positions unchanged):
#   line 4  gpu_list  -1 (a CPU chain) becomes the NPU cards, TIPC_NPU_CARDS (default "0|0,1": one card, then
#                     two); card ids already there stay (paddle.distributed.launch numbers NPUs the same way)
#   line 5  the training device values (cpu, gpu, gpu:N) become npu
#   --use-gpu / use_gpu values: True and gpu become npu, False and cpu stay (inference on the CPU too)
#   --use-tensorrt / use_tensorrt values become False (no TensorRT on NPUs)
#   anywhere else the word gpu in a value (after the first colon) becomes npu (e.g. -o device=gpu)
# Environment: TIPC_NPU_REWRITE_ONLY=1 writes the copy, prints its path and runs nothing (no NPU needed);
# TIPC_MAIN_SCRIPT (default: test_train_inference_python.sh beside this script), TIPC_NPU_OUT (default
# test_tipc/output/npu), PYTHON (default python).

FILENAME=$1
MODE=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAIN=${TIPC_MAIN_SCRIPT:-${HERE}/test_train_inference_python.sh}
OUT=${TIPC_NPU_OUT:-test_tipc/output/npu}
CARDS=${TIPC_NPU_CARDS:-0|0,1}
PY=${PYTHON:-python}

if [ -z "${FILENAME}" ] || [ -z "${MODE}" ]; then
    echo "usage: bash $0 CONFIG MODE (lite_train_lite_infer | lite_train_whole_infer | whole_infer |" \
         "whole_train_whole_infer)" >&2
    exit 2
fi
if [ ! -f "${FILENAME}" ]; then
    echo "error: config file not found: ${FILENAME}" >&2
    exit 2
fi
if [[ ! ${CARDS} =~ ^[0-9]+(,[0-9]+)*(\|[0-9]+(,[0-9]+)*)*$ ]]; then
    echo "error: TIPC_NPU_CARDS must look like 0|0,1 (card lists separated by |), got '${CARDS}'" >&2
    exit 2
fi

mkdir -p "${OUT}"
CONFIG_NPU="${OUT}/$(basename "${FILENAME%.txt}")_npu.txt"
sed -E \
    -e "4 s#^(gpu_list:)[[:space:]]*-1[[:space:]]*\$#\\1${CARDS}#" \
    -e '5 { :dev' -e 's/(:|\|)(cpu|gpu)(:[0-9]+)?(\||$)/\1npu\4/' -e 't dev' -e '}' \
    -e '/^[^:]*use[-_]gpu[^:]*:/ { :use' -e 's/(:|\|)(True|true|gpu)(\||$)/\1npu\3/' -e 't use' -e '}' \
    -e 's/^([^:]*use[-_]tensorrt[^:]*):.*$/\1:False/' \
    -e ':word' -e 's/^([^:]*:.*)\bgpu\b/\1npu/' -e 't word' \
    "${FILENAME}" > "${CONFIG_NPU}" || exit 2

if [ "${TIPC_NPU_REWRITE_ONLY:-0}" = "1" ]; then
    echo "${CONFIG_NPU}"
    exit 0
fi
if [ ! -f "${MAIN}" ]; then
    echo "error: ${MAIN} not found (the TIPC chain script)" >&2
    exit 2
fi
if ! ${PY} -c "import sys, paddle; sys.exit(0 if 'npu' in paddle.device.get_all_custom_device_type() else 1)" \
        2>/dev/null; then
    echo "error: this Paddle has no npu device: install paddle-custom-npu over the CPU paddlepaddle on a machine" \
         "with CANN (docs/devices.md)" >&2
    exit 1
fi
exec bash "${MAIN}" "${CONFIG_NPU}" "${MODE}"
