# __srl_cg: the oom-kill and pids-refusal counters of the container's memory and pids cgroups (v1 or
# v2), and whether the pids cgroup is full (at most one pid free), into the variable __srl_c as
# "OOM PIDS FULL". Builtins only (no command substitution, no fork): the status line must still come
# when a fork bomb has taken every pid.
__srl_cg() { local l o=0 p=0 d=/sys/fs/cgroup/pids n m f=0
  if [ -r /sys/fs/cgroup/memory/memory.oom_control ]; then while read -r l; do case $l in oom_kill\ *) o=${l#oom_kill };; esac; done < /sys/fs/cgroup/memory/memory.oom_control
  elif [ -r /sys/fs/cgroup/memory.events ]; then while read -r l; do case $l in oom_kill\ *) o=${l#oom_kill };; esac; done < /sys/fs/cgroup/memory.events; fi
  [ -r $d/pids.events ] || d=/sys/fs/cgroup
  if [ -r $d/pids.events ]; then read -r l < $d/pids.events; p=${l#max }
    read -r n < $d/pids.current; read -r m < $d/pids.max; [ "$m" != max ] && [ $((n + 1)) -ge "$m" ] && f=1; fi
  printf -v __srl_c '%s %s %s' "$o" "$p" "$f"; }
