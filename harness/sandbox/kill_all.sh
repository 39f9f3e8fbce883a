# Signal every process of the calling user (not init) until none is left but zombies: one pass of
# `kill -9 -1` can miss the children a fork bomb makes meanwhile, and `kill` keeps "succeeding" on a
# killed session shell until its parent (outside the container) reaps it. Builtins only in the loop
# (no fork: under a fork bomb the pids cgroup refuses them).
me=$$ n=0
while kill -9 -1 2>/dev/null; do
  left=0
  for d in /proc/[0-9]*; do
    [ "${d#/proc/}" = "$me" ] && continue
    [ -O "$d" ] || continue
    read -r s < "$d/stat" 2>/dev/null || continue
    s=${s##*) }
    case $s in Z*) ;; *) left=1; break;; esac
  done
  [ $left = 0 ] && exit 0
  n=$((n+1)); [ $n -ge 5000 ] && exit 1
done
exit 0
