# Kill every descendant of the session shell $1, and their process groups, but not the shell itself;
# SIGUSR1 first makes the shell abandon the rest of the command (its trap returns from the eval).
root=$1; pids=" $root "; changed=1
kill -USR1 $root 2>/dev/null
while [ $changed = 1 ]; do changed=0
  for d in /proc/[0-9]*; do p=${d#/proc/}; case "$pids" in *" $p "*) continue;; esac
    s=$(cat $d/stat 2>/dev/null) || continue; s=${s##*) }; set -- $s
    case "$pids" in *" $2 "*) pids="$pids$p "; changed=1;; esac
  done
done
rootpg=$(s=$(cat /proc/$root/stat); s=${s##*) }; set -- $s; echo $3)
for p in $pids; do [ $p = $root ] && continue
  pg=$(s=$(cat /proc/$p/stat 2>/dev/null) && { s=${s##*) }; set -- $s; echo $3; })
  [ -n "$pg" ] && [ "$pg" != "$rootpg" ] && kill -9 -- -$pg 2>/dev/null
  kill -9 $p 2>/dev/null
done
exit 0
