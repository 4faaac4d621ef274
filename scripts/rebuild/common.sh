# Shared by the rebuild scripts: the orchestrion command, progress lines, resumable stages.
# Sourced, not run: `source "$(dirname "${BASH_SOURCE[0]}")/common.sh"`, then `take_out_dir "$@"`.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [ -z "${ORCHESTRION:-}" ]; then
    if [ -x "$REPO_ROOT/.venv/bin/orchestrion" ]; then
        ORCHESTRION="$REPO_ROOT/.venv/bin/orchestrion"
    else
        ORCHESTRION=orchestrion
    fi
fi
REBUILD_START=$SECONDS

# take_out_dir ARGS...: the script's one argument, the output folder, made and set as OUT
# (an absolute path); a usage line and exit 2 otherwise.
take_out_dir() {
    if [ $# -ne 1 ]; then
        echo "usage: bash scripts/rebuild/$(basename "$0") OUT_DIR" >&2
        exit 2
    fi
    mkdir -p "$1"
    OUT=$(cd "$1" && pwd)
}

# say MESSAGE: a progress line with the minutes since the script started.
say() {
    printf '[rebuild %4d min] %s\n' $(( (SECONDS - REBUILD_START) / 60 )) "$*"
}

# stage NAME COMMAND...: run COMMAND unless OUT/NAME/model already holds its result (a
# rebuild that stopped picks up at the first unfinished stage; that stage starts over).
stage() {
    local name=$1
    shift
    if [ -f "$OUT/$name/model/config.json" ]; then
        say "$name: done before, kept"
        return
    fi
    rm -rf "${OUT:?}/$name"
    say "$name: starting"
    "$@"
    if [ ! -f "$OUT/$name/model/config.json" ]; then
        say "$name: the run wrote no model folder; stopping"
        exit 1
    fi
    say "$name: finished ($OUT/$name/model)"
}
