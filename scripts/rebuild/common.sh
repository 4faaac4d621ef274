# Shared by the rebuild scripts: the orchestrion command, progress lines, resumable stages.
# Sourced, not run: `source "$(dirname "$0")/common.sh"` after setting OUT.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [ -z "${ORCHESTRION:-}" ]; then
    if [ -x "$REPO_ROOT/.venv/bin/orchestrion" ]; then
        ORCHESTRION="$REPO_ROOT/.venv/bin/orchestrion"
    else
        ORCHESTRION=orchestrion
    fi
fi
REBUILD_START=$SECONDS

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
