#!/usr/bin/env bash
# Prepare what a TIPC chain needs, offline: the lite data set of the model (made from the photographs inside
# scikit-image by tools/make_lite_data.py, into data/lite/) and, for whole_infer, a check that the converted
# pretrained weights the config names are in pretrained_models/.
#
#   bash test_tipc/prepare.sh test_tipc/configs/MIRNet_V2/train_infer_python.txt lite_train_lite_infer
#   bash test_tipc/prepare.sh test_tipc/configs/MIRNet_V2/train_infer_python.txt whole_infer
#   bash test_tipc/prepare.sh test_tipc/configs/MIRNet_V2/paddle2onnx_infer_python.txt paddle2onnx_infer
#
# Nothing is downloaded.  Data already in data/lite/ is kept; delete the folder to rebuild it.
# Exit status 0 when everything is in place, 1 when something is missing (the message says how to get it).

if [ $# -lt 2 ]; then
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
CONFIG=$(realpath -m "$1")
MODE=$2
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT" || exit 2
source test_tipc/common_func.sh

if [[ " $TIPC_MODES paddle2onnx_infer " != *" $MODE "* ]]; then
    echo "error: unknown mode '$MODE'; one of: $TIPC_MODES paddle2onnx_infer" >&2
    exit 2
fi
func_read_config "$CONFIG" 3 || exit 2
model_name=$(func_parser_value "${CONFIG_LINES[1]}")
python=$(func_parser_value "${CONFIG_LINES[2]}")
LITE_ROOT=data/lite

# Official file and converter --arch of each converted weights file the configs name.
official_source() {
    case "$(basename "$1")" in
        MIRNet_v2_real_denoising.pdparams) echo "MIRNet_v2 real_denoising.pth" ;;
        MIMOUNet_GoPro.pdparams)           echo "MIMOUNet MIMO-UNet.pkl" ;;
        MIMOUNetPlus_GoPro.pdparams)       echo "MIMOUNetPlus MIMO-UNetPlus.pkl" ;;
        DAE_sigma11.pdparams)              echo "DAE DAE_sigma11.mat" ;;
        *)                                 echo "" ;;
    esac
}

if [ "$MODE" = "whole_infer" ]; then
    func_read_config "$CONFIG" 32 || exit 2
    weights=$(func_parser_value "${CONFIG_LINES[23]}")
    if [ -f "$weights" ]; then
        echo "pretrained weights found: $weights"
    else
        read -r arch official <<< "$(official_source "$weights")"
        echo "error: whole_infer needs the converted pretrained weights $weights (line 24 of $1), which are missing." >&2
        if [ -n "$arch" ]; then
            echo "  Get the official ${official} (see pretrained_models/README.md for where the authors publish it), then:" >&2
            echo "  ${python} tools/convert_weights.py --arch ${arch} --src /path/to/${official} --dst ${weights}" >&2
        else
            echo "  Put a .pdparams file there (tools/convert_weights.py converts official checkpoints)." >&2
        fi
        exit 1
    fi
fi

# Lite data task and the folders it writes, per model.
case "$model_name" in
    MIRNet_V2*) task=sidd;  folders="SIDD_patches SIDD_Medium_Srgb SIDD_val" ;;
    MIMO_UNet*) task=gopro; folders="GOPRO GOPRO_Large" ;;
    DMSP*)      task=bsds;  folders="BSDS300" ;;
    *)          task=all;   folders="SIDD_patches GOPRO BSDS300" ;;
esac
missing=0
for folder in $folders; do
    [ -d "${LITE_ROOT}/${folder}" ] || missing=1
done
if [ "$missing" = 1 ]; then
    echo "building the lite '${task}' data in ${LITE_ROOT}/ (offline, a few seconds)"
    "$python" tools/make_lite_data.py --task "$task" --out "$LITE_ROOT" || {
        echo "error: building the lite data failed (see above)" >&2
        exit 1
    }
else
    echo "lite '${task}' data already in ${LITE_ROOT}/ ($folders)"
fi

if [ "$MODE" = "paddle2onnx_infer" ]; then
    func_read_config "$CONFIG" 13 || exit 2
    model_dir=$(func_parser_value "${CONFIG_LINES[4]}")
    model_file=$(func_parser_value "${CONFIG_LINES[5]}")
    if ! command -v "$(func_parser_value "${CONFIG_LINES[3]}" | awk '{print $1}')" > /dev/null; then
        echo "error: paddle2onnx is not installed: pip install -r requirements-deploy.txt" >&2
        exit 1
    fi
    if [ -f "${model_dir}/${model_file}" ]; then
        echo "exported model found: ${model_dir}/${model_file}"
    else
        chain="$(dirname "$CONFIG")/train_infer_python.txt"
        echo "no exported model in ${model_dir}: running the lite chain of ${model_name} to make one"
        bash test_tipc/test_train_inference_python.sh "$chain" lite_train_lite_infer || exit 1
        if [ ! -f "${model_dir}/${model_file}" ]; then
            echo "error: the lite chain did not write ${model_dir}/${model_file}; check line 5 of $1" >&2
            exit 1
        fi
    fi
fi
echo "prepared ${model_name} for ${MODE}"
