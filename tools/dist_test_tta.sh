#!/usr/bin/env bash
# Continual TTA on several processes of one or more nodes with torchrun:
#   tools/dist_test_tta.sh CONFIG CHECKPOINT NPROC [tools/test_tta.py options]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
# PYTHON picks the interpreter (default: python).
# Exit status: torchrun's (0, or 1 when any process failed), except 75 when every process of
# this node saved its state on SIGTERM or SIGINT and stopped (resume with --resume).
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT NPROC [test_tta.py options]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

# torchrun exits 1 whatever status its processes exit with; each process writes how it ended
# here (tools/test_tta.py): running, then 0, 1 or 75
STAG_SEG_STATUS_DIR=$(mktemp -d)
export STAG_SEG_STATUS_DIR
trap 'rm -rf "$STAG_SEG_STATUS_DIR"' EXIT
# a SIGTERM or SIGINT to this script too (a whole process group) waits for torchrun, which
# forwards it to its processes, and only then ends the script
trap ':' TERM INT

status=0
PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$(dirname "$0")/test_tta.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch \
    "${@:4}" || status=$?

preempted=$(cat "$STAG_SEG_STATUS_DIR"/rank* 2>/dev/null | grep -c '^75$' || true)
if [ "$status" -ne 0 ] && [ "$preempted" -eq "$NPROC" ]; then
    status=75
fi
# a process that never wrote how it ended was killed (SIGKILL, the out-of-memory killer)
lost=""
for file in "$STAG_SEG_STATUS_DIR"/rank*; do
    if [ -f "$file" ] && [ "$(cat "$file")" = running ]; then
        lost="$lost ${file##*/rank}"
    fi
done
if [ "$status" -ne 0 ] && [ -n "$lost" ]; then
    echo "dist_test_tta.sh: rank(s)$lost of node $NODE_RANK died without a word (killed by a" \
        "signal: SIGKILL, the out-of-memory killer); torchrun's report above has each exit" \
        "code. Run again with --resume to continue from the last saved state" >&2
fi
exit "$status"
