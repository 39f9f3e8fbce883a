# Sandbox.run_once: the container's main process (after cgroup.sh). $1: the command, $2: the status
# token. The command runs in a subshell (an `exit` in it ends only the subshell); then the status line:
# "<token> <exit status> <oom> <pids> <pids full>".
export PAGER=cat GIT_PAGER=cat TERM=dumb PIP_NO_INPUT=1
__srl_cmd=$1 __srl_tok=$2
set --
( eval "$__srl_cmd" ) </dev/null 2>&1
__rc=$?
__srl_cg 2>/dev/null; printf '\n%s %s %s\n' "$__srl_tok" "$__rc" "$__srl_c"
