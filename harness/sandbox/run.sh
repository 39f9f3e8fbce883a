# Sandbox.run: one command through a fresh `docker exec` (after cgroup.sh). $1: seconds before it is
# killed, $2: the status token, the rest: the command's argv. The status line carries the counters
# from before and after the command (an exec starts in the middle of the container's life):
# "<token> <exit status> <oom> <pids> <pids full> <oom before> <pids before>".
__srl_secs=$1 __srl_tok=$2
shift 2
__srl_cg 2>/dev/null; __srl_c0=${__srl_c% *}
timeout -s KILL "$__srl_secs" "$@" </dev/null 2>&1
__rc=$?
__srl_cg 2>/dev/null; printf '\n%s %s %s %s\n' "$__srl_tok" "$__rc" "$__srl_c" "$__srl_c0"
