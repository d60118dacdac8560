#!/usr/bin/env bash
# Train -> evaluate -> export -> infer chain of one model, driven by a 32-line chain config.
#
#   bash test_tipc/prepare.sh test_tipc/configs/MIRNet_V2/train_infer_python.txt lite_train_lite_infer
#   bash test_tipc/test_train_inference_python.sh test_tipc/configs/MIRNet_V2/train_infer_python.txt lite_train_lite_infer
#
# MODE: lite_train_lite_infer | lite_train_whole_infer | whole_infer | whole_train_whole_infer.
# Every step appends "Run successfully with command - ..." or "Run failed with command - ..." to
# test_tipc/output/<model_name>/<MODE>/results_python.log; its output goes to a log file beside it.  Steps that
# depend on a failed one (evaluation, export and inference after a failed training) are skipped.
# TIPC_OUTPUT=DIR puts the outputs under DIR instead of test_tipc/output.
# Exit status: 0 when every step passed, 1 when any step failed (unlike the usual TIPC script), 2 for a bad
# config or mode.
# The line map is documented in test_tipc/docs/test_train_inference_python.md.
set -f   # config values may hold globs (--img-path data/*.png): they are passed on, never expanded here

if [ $# -lt 2 ]; then
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
CONFIG=$(realpath -m "$1")
MODE=$2
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT" || exit 2
source test_tipc/common_func.sh

if [[ " $TIPC_MODES " != *" $MODE "* ]]; then
    echo "error: unknown mode '$MODE'; one of: $TIPC_MODES" >&2
    exit 2
fi
func_read_config "$CONFIG" 32 || exit 2
for check in "1 train_params" "12 ##" "13 trainer:" "15 ##" "16 eval_params" "17 eval:" "18 ##" \
             "19 infer_params" "23 ##" "26 ##" "27 inference:"; do
    func_expect_line ${check%% *} "${check#* }" "$CONFIG" || exit 2
done
L=("" "${CONFIG_LINES[@]}")   # L[n] is line n, as the documentation numbers them

# ---- train parameters (lines 2-11)
model_name=$(func_parser_value "${L[2]}")
python=$(func_parser_value "${L[3]}")
gpu_list=$(func_parser_value "${L[4]}")
device_key=$(func_parser_key "${L[5]}")
device_values=$(func_parser_value "${L[5]}")
iters_key=$(func_parser_key "${L[6]}")
iters_value=$(func_parser_params "${L[6]}" "$MODE")
save_model_key=$(func_parser_key "${L[7]}")
batch_key=$(func_parser_key "${L[8]}")
batch_value=$(func_parser_params "${L[8]}" "$MODE")
pretrained_key=$(func_parser_key "${L[9]}")
pretrained_value=$(func_parser_params "${L[9]}" "$MODE")
train_model_name=$(func_parser_value "${L[10]}")
data_key=$(func_parser_key "${L[11]}")
data_value=$(func_parser_params "${L[11]}" "$MODE")
# ---- trainer (lines 13-14), evaluation (line 17)
trainer_list=$(func_parser_value "${L[13]}")
trainer_name=$(func_parser_key "${L[14]}")
trainer_py=$(func_parser_value "${L[14]}")
eval_py=$(func_parser_value "${L[17]}")
# ---- export (lines 20-25)
save_infer_key=$(func_parser_key "${L[20]}")
save_infer_dir=$(func_parser_value "${L[20]}")
export_weight_key=$(func_parser_key "${L[21]}")
norm_export=$(func_parser_value "${L[22]}")
infer_weights=$(func_parser_value "${L[24]}")
infer_export=$(func_parser_value "${L[25]}")
# ---- inference (lines 27-32)
inference_py=$(func_parser_value "${L[27]}")
use_gpu_key=$(func_parser_key "${L[28]}")
use_gpu_list=$(func_parser_value "${L[28]}")
infer_batch_key=$(func_parser_key "${L[29]}")
infer_batch_list=$(func_parser_value "${L[29]}")
infer_model_key=$(func_parser_key "${L[30]}")
img_key=$(func_parser_key "${L[31]}")
img_value=$(func_parser_params "${L[31]}" "$MODE")
benchmark_key=$(func_parser_key "${L[32]}")
benchmark_value=$(func_parser_params "${L[32]}" "$MODE")

LOG_PATH="${TIPC_OUTPUT:-test_tipc/output}/${model_name}/${MODE}"
mkdir -p "$LOG_PATH"
status_log="${LOG_PATH}/results_python.log"
echo "TIPC ${model_name} ${MODE}: results in ${status_log}"

# Inference with every --use-gpu value and batch size of lines 28-29 on the exported model in $1.
func_inference() {
    local model_dir=$1 prefix=$2 use_gpu batch type cmd IFS='|'
    for use_gpu in $use_gpu_list; do
        type=$(func_device_type "$use_gpu")
        if ! func_device_available "$type" "$python"; then
            echo "skipped: inference on ${type} (this Paddle build has no ${type} device)" | tee -a "$status_log"
            continue
        fi
        local set_device
        case "${use_gpu,,}" in
            true|false|gpu|cpu) set_device=$(func_set_params "$use_gpu_key" "$([ "$type" = gpu ] && echo True || echo False)") ;;
            *) set_device="--device=${use_gpu}" ;;
        esac
        for batch in $infer_batch_list; do
            cmd="${python} ${inference_py} ${set_device} $(func_set_params "$infer_model_key" "$model_dir")"
            cmd+=" $(func_set_params "$infer_batch_key" "$batch") $(func_set_params "$img_key" "$img_value")"
            cmd+=" $(func_set_params "$benchmark_key" "$benchmark_value")"
            func_run_step "$cmd" "$status_log" "${LOG_PATH}/${prefix}_infer_${type}_batchsize_${batch}.log"
        done
    done
}

if [ "$MODE" = "whole_infer" ]; then
    # Pretrained weights (line 24): evaluate, export, infer.
    export TIPC_RUN_DIR="${LOG_PATH}/pretrained"
    mkdir -p "$TIPC_RUN_DIR"
    if [ ! -f "$infer_weights" ]; then
        echo "note: $infer_weights is missing; bash test_tipc/prepare.sh $1 whole_infer says how to make it"
    fi
    if [ "$eval_py" != "null" ]; then
        cmd="${python} ${eval_py} $(func_set_params "$pretrained_key" "$infer_weights")"
        func_run_step "$cmd" "$status_log" "${LOG_PATH}/pretrained_eval.log"
    fi
    if [ "$infer_export" != "null" ]; then
        cmd="${python} ${infer_export} $(func_set_params "$export_weight_key" "$infer_weights")"
        cmd+=" $(func_set_params "$save_infer_key" "$save_infer_dir")"
        if ! func_run_step "$cmd" "$status_log" "${LOG_PATH}/pretrained_export.log"; then
            echo "skipped: inference (export failed)" | tee -a "$status_log"
            save_infer_dir=""
        fi
    fi
    [ -n "$save_infer_dir" ] && func_inference "$save_infer_dir" "pretrained"
else
    IFS='|' read -r -a gpus <<< "$gpu_list"
    IFS='|' read -r -a devices <<< "$device_values"
    IFS='|' read -r -a trainers <<< "$trainer_list"
    for index in "${!gpus[@]}"; do
        gpu=${gpus[$index]}
        device=${devices[$index]:-${devices[0]}}
        type=$(func_device_type "$device")
        [ "$gpu" = "-1" ] && type=cpu && device=cpu
        if ! func_device_available "$type" "$python"; then
            echo "skipped: training on ${type} card(s) ${gpu} (this Paddle build has no ${type} device)" \
                | tee -a "$status_log"
            continue
        fi
        for trainer in "${trainers[@]}"; do
            if [ "$trainer" != "$trainer_name" ]; then
                echo "error: trainer '$trainer' of line 13 has no command: line 14 is '${trainer_name}'" >&2
                exit 2
            fi
            if [ "$trainer_py" = "null" ]; then continue; fi
            save_log="${LOG_PATH}/${trainer}_gpus_${gpu}"
            export TIPC_RUN_DIR="$save_log"
            rm -rf "$save_log"   # this chain's own output folder: start clean
            mkdir -p "$save_log"
            launch="${python}"
            set_device=$(func_set_params "$device_key" "$device")
            if [[ $gpu == *,* ]]; then     # several cards: one process per card
                launch="${python} -m paddle.distributed.launch --devices=${gpu}"
                set_device=$(func_set_params "$device_key" "$type")
            elif [ "$gpu" != "-1" ] && [[ $device != *:* ]]; then
                set_device=$(func_set_params "$device_key" "${device}:${gpu}")
            fi
            if [[ $trainer == amp* ]] && [ "$type" = cpu ]; then
                echo "note: mixed precision needs a GPU or NPU; on the CPU the engine warns and trains in float32"
            fi
            cmd="${launch} ${trainer_py} $(func_set_params "$save_model_key" "$save_log")"
            cmd+=" $(func_set_params "$iters_key" "$iters_value") $(func_set_params "$batch_key" "$batch_value")"
            cmd+=" $(func_set_params "$data_key" "$data_value")"
            cmd+=" $(func_set_params "$pretrained_key" "$pretrained_value") ${set_device}"
            if ! func_run_step "$cmd" "$status_log" "${LOG_PATH}/${trainer}_gpus_${gpu}_train.log"; then
                echo "skipped: evaluation, export and inference of ${save_log} (training failed)" | tee -a "$status_log"
                continue
            fi
            weights="${save_log}/${train_model_name}"
            eval_device=$(func_set_params "$device_key" "$([[ $gpu == *,* ]] && echo "$type" || echo "${set_device#*=}")")
            if [ "$eval_py" != "null" ]; then
                cmd="${python} ${eval_py} $(func_set_params "$pretrained_key" "$weights") ${eval_device}"
                func_run_step "$cmd" "$status_log" "${LOG_PATH}/${trainer}_gpus_${gpu}_eval.log"
            fi
            if [ "$norm_export" != "null" ]; then
                cmd="${python} ${norm_export} $(func_set_params "$export_weight_key" "$weights")"
                cmd+=" $(func_set_params "$save_infer_key" "${save_log}/inference")"
                if func_run_step "$cmd" "$status_log" "${LOG_PATH}/${trainer}_gpus_${gpu}_export.log"; then
                    func_inference "${save_log}/inference" "${trainer}_gpus_${gpu}"
                else
                    echo "skipped: inference (export failed)" | tee -a "$status_log"
                fi
            fi
        done
    done
fi

if [ "$TIPC_FAILED" -gt 0 ]; then
    echo "TIPC ${model_name} ${MODE}: ${TIPC_FAILED} step(s) failed, ${TIPC_PASSED} passed (see ${status_log})"
    exit 1
fi
if [ "$TIPC_PASSED" -eq 0 ]; then
    echo "TIPC ${model_name} ${MODE}: no step ran (every device skipped?)"
    exit 1
fi
echo "TIPC ${model_name} ${MODE}: all ${TIPC_PASSED} step(s) passed"
