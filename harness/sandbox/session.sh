# The persistent session's prelude (sent on the shell's stdin after cgroup.sh). Job control puts every
# command in its own process group, so a timeout kills the whole group; SIGUSR1 makes the shell abandon
# the rest of a command (see kill_tree.sh). Each command arrives as
#   __srl_run <bash-quoted command> <token>
# and is followed by its status line: "<token> <exit status> <oom> <pids> <pids full>".
set -m
export PAGER=cat GIT_PAGER=cat TERM=dumb PIP_NO_INPUT=1
__srl_inner() { eval "$1"; }
trap 'return 137' USR1
__srl_run() { local __c=$1 __t=$2 __rc; { __srl_inner "$__c"; } </dev/null 2>&1; __rc=$?
  __srl_cg 2>/dev/null; printf '\n%s %s %s\n' "$__t" "$__rc" "$__srl_c"; }
printf '__SRL_READY__ %s\n' "$$"
