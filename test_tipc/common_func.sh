#!/usr/bin/env bash
# Helpers shared by the TIPC scripts (sourced, not run).
#
# A chain config is a text file of "key:value" lines read by position (see docs/test_train_inference_python.md).
# A value may hold one entry per mode, "lite_train_lite_infer=2|whole_train_whole_infer=100", or a list of
# alternatives separated by "|" (gpu_list:0|0,1).  "null" as a key or value switches the parameter off.

TIPC_MODES="lite_train_lite_infer lite_train_whole_infer whole_infer whole_train_whole_infer"
TIPC_FAILED=0     # steps that failed in this run (status_check counts them)
TIPC_PASSED=0     # steps that succeeded in this run

# Text before the first colon of a config line.
func_parser_key() {
    local line=$1
    line=${line%%:*}
    printf '%s' "${line//[$'\t\r ']/}"
}

# Text after the first colon of a config line, surrounding blanks removed.
func_parser_value() {
    local line=$1 value
    [[ $line == *:* ]] || { printf '%s' ""; return; }
    value=${line#*:}
    value=${value%$'\r'}
    value="${value#"${value%%[![:space:]]*}"}"
    printf '%s' "${value%"${value##*[![:space:]]}"}"
}

# The value of a config line for MODE: the "MODE=..." entry of a per-mode value, "null" when the value is
# per-mode but names no entry for MODE, else the whole value.
func_parser_params() {
    local value mode=$2 item per_mode=0
    value=$(func_parser_value "$1")
    local IFS='|'
    for item in $value; do
        if [[ $item == "$mode="* ]]; then
            printf '%s' "${item#*=}"
            return
        fi
        [[ " $TIPC_MODES " == *" ${item%%=*} "* ]] && per_mode=1
    done
    if [ "$per_mode" = 1 ]; then printf 'null'; else printf '%s' "$value"; fi
}

# "key=value", or nothing when the key or the value is empty or "null".
func_set_params() {
    local key=$1 value=$2
    if [ -z "$key" ] || [ "$key" = "null" ] || [ -z "$value" ] || [ "$value" = "null" ]; then
        printf '%s' ""
    else
        printf '%s=%s' "$key" "$value"
    fi
}

# Read the first N lines of a config into the array CONFIG_LINES; fail with a clear message when it is shorter.
func_read_config() {
    local file=$1 count=$2
    if [ ! -f "$file" ]; then
        echo "error: config file not found: $file" >&2
        return 2
    fi
    mapfile -t CONFIG_LINES < <(head -n "$count" "$file" | tr -d '\r')
    if [ "${#CONFIG_LINES[@]}" -lt "$count" ]; then
        echo "error: $file has ${#CONFIG_LINES[@]} lines; this chain reads $count (blank lines count too)" >&2
        return 2
    fi
}

# Check that line NUMBER (1-based) of the config read by func_read_config contains TEXT; a blank or missing
# line shifts every later index, so a misplaced separator is reported before anything runs.
func_expect_line() {
    local number=$1 text=$2 file=$3 line
    line=${CONFIG_LINES[$((number - 1))]}
    if [[ $line != *"$text"* ]]; then
        echo "error: line $number of $file should contain '$text' but is '$line' (a line was added or removed?)" >&2
        return 2
    fi
}

# Record the outcome of one step: a "Run successfully with command - ..." or "Run failed with command - ..."
# line on the console and appended to RESULT_LOG.  On failure the last lines of STEP_LOG are shown.
status_check() {
    local status=$1 command=$2 result_log=$3 step_log=${4:-}
    local line
    if [ "$status" -eq 0 ]; then
        line="Run successfully with command - ${command}!"
        TIPC_PASSED=$((TIPC_PASSED + 1))
    else
        line="Run failed with command - ${command}!"
        TIPC_FAILED=$((TIPC_FAILED + 1))
        if [ -n "$step_log" ] && [ -f "$step_log" ]; then
            echo "---- last lines of $step_log (exit status $status) ----"
            tail -n 15 "$step_log"
            echo "----"
        fi
    fi
    echo "$line" >> "$result_log"
    if [ -t 1 ]; then
        if [ "$status" -eq 0 ]; then printf '\033[32m%s\033[0m\n' "$line"; else printf '\033[31m%s\033[0m\n' "$line"; fi
    else
        echo "$line"
    fi
}

# Run COMMAND (a shell command line built from the config) with its output shown and saved in STEP_LOG, then
# record the outcome.  "${TIPC_RUN_DIR}" in the command is replaced by that folder first, so the recorded
# command can be copied and run as it is.
func_run_step() {
    local command=$1 result_log=$2 step_log=$3 status
    command=${command//'${TIPC_RUN_DIR}'/$TIPC_RUN_DIR}
    mkdir -p "$(dirname "$step_log")"
    echo "+ $command"
    { eval "$command"; } 2>&1 | tee "$step_log"
    status=${PIPESTATUS[0]}
    status_check "$status" "$command" "$result_log" "$step_log"
    return "$status"
}

# Device types this Paddle build can use (cpu, gpu, npu, ...), found once per run.
func_available_devices() {
    if [ -z "${TIPC_DEVICES:-}" ]; then
        TIPC_DEVICES=$("$1" -c "from utils.device import available_devices; print(' '.join(available_devices()))" \
                       2>/dev/null | tail -n 1)
        TIPC_DEVICES=${TIPC_DEVICES:-cpu}
    fi
    printf '%s' "$TIPC_DEVICES"
}

# Device type of a training device value or an inference --use-gpu value: True/gpu -> gpu, False/cpu -> cpu,
# anything else (npu, npu:0, a custom device) its type.
func_device_type() {
    local v=${1,,}
    case "$v" in
        true|gpu|gpu:*) printf 'gpu' ;;
        false|cpu|"") printf 'cpu' ;;
        *) printf '%s' "${v%%:*}" ;;
    esac
}

# 0 when device type TYPE is usable here (cpu always is).
func_device_available() {
    local type=$1 python=$2
    [ "$type" = "cpu" ] && return 0
    [[ " $(func_available_devices "$python") " == *" $type "* ]]
}
