"""What a sandbox Pod runs for exec, files and stats: POSIX ``sh`` scripts sent through ``pods/exec``.

The image is the user's, so nothing of kubegate is installed in it: each request is one
``sh -c SCRIPT NAME ARGS...`` (arguments never spliced into the script, so no quoting games).
The file I/O happens inside the Pod, with the Pod's rights, never by the gateway. Paths are
confined to the container's working directory (its home) as the local agent confines them:
``..`` is refused, an absolute path must lie inside the home, and symlinks are resolved
(``cd -P``/``pwd -P``, ``realpath``) before the check, so a link to ``/etc`` is refused. A
refusal exits ``REFUSED`` with ``CODE message`` on stderr (``refusal``).
"""

from __future__ import annotations

from mcp_server.errors import BadRequest, KubegateError, NotFound, PayloadTooLarge

REFUSED = 97
_MARK = "kubegate-refused "
_ERRORS: dict[int, type[KubegateError]] = {400: BadRequest, 404: NotFound, 413: PayloadTooLarge}

_COMMON = r"""
refuse() { printf 'kubegate-refused %s %s\n' "$1" "$2" >&2; exit 97; }
root=$(pwd -P)
within() { [ "$1" = "$root" ] || inside "$1"; }
inside() { case $1 in "$root"/*) return 0;; esac; [ "$root" = / ] && [ "$1" != / ]; }
place() {
  [ -n "$1" ] || refuse 400 "path must be a non-empty file path"
  case "/$1/" in */../*) refuse 400 "path must not contain '..'";; esac
  case $1 in /*) full=$1;; *) full=$root/$1;; esac
  within "$full" || refuse 400 "path '$1' leads outside the sandbox's home $root"
}
outside() { refuse 400 "path '$1' leads outside the sandbox's home $root (symlinks are followed)"; }
"""

READ = _COMMON + r"""
place "$1"
[ -e "$full" ] || refuse 404 "no file '$1' in the sandbox"
real=$(realpath "$full") || refuse 404 "no file '$1' in the sandbox"
inside "$real" || outside "$1"
[ -f "$real" ] || refuse 400 "'$1' is not a regular file"
size=$(wc -c < "$real") || refuse 400 "'$1' cannot be read"
[ "$size" -le "$2" ] || refuse 413 "'$1' has $size bytes, more than the $2 allowed"
exec cat "$real"
"""

WRITE = _COMMON + r"""
place "$1"
name=${full##*/}
[ -n "$name" ] || refuse 400 "path must name a file, not a directory"
dir=${full%/*}; [ -n "$dir" ] || dir=/
near=$dir
while [ ! -d "$near" ]; do near=${near%/*}; [ -n "$near" ] || near=/; done
within "$(cd -P "$near" && pwd -P)" || outside "$1"
mkdir -p "$dir" 2>/dev/null || refuse 400 "cannot make the directory of '$1'"
rdir=$(cd -P "$dir" && pwd -P) || refuse 400 "cannot enter the directory of '$1'"
within "$rdir" || outside "$1"
target=$rdir/$name
if [ -L "$target" ] || [ -e "$target" ]; then
  real=$(realpath "$target" 2>/dev/null) || outside "$1"
  inside "$real" || outside "$1"
  [ -f "$real" ] || refuse 400 "'$1' is not a regular file"
  target=$real
fi
exec cat > "$target"
"""

# The timeout needs nothing in the image but ``sh`` and ``sleep`` (no ``timeout``, no ``ps``): a watcher
# sleeps, then stops the command and every process descending from it (found through ``/proc``, so
# a child holding the output open cannot outlive it) and kills them. ``wait`` then gives 128+9.
_REAP = r"""
reap() {
  all=" $1 "; kill -STOP "$1"; grew=1
  while [ -n "$grew" ]; do
    grew=
    for stat in /proc/[0-9]*/stat; do
      read -r line < "$stat" || continue
      rest=${line##*) }; rest=${rest#* }; parent=${rest%% *}; p=${stat#/proc/}; p=${p%/stat}
      case $all in *" $p "*) continue;; esac
      case $all in *" $parent "*) all="$all$p "; kill -STOP "$p"; grew=1;; esac
    done
  done
  for p in $all; do kill -KILL "$p"; done
}
"""

EXEC = _COMMON + _REAP + r"""
if [ -n "$1" ]; then
  place "$1"
  [ -d "$full" ] || refuse 400 "cwd '$1' is not a directory in the sandbox"
  cd -P "$full" || refuse 400 "cannot enter cwd '$1'"
  within "$(pwd -P)" || outside "$1"
fi
seconds=$2; shift 2
while [ "$#" -gt 0 ] && [ "$1" != -- ]; do export "$1" || refuse 400 "invalid env entry"; shift; done
shift
exec 3<&0
"$@" <&3 3<&- &
pid=$!
exec 3<&- 2>/dev/null
( trap 'kill "$nap" 2>/dev/null; exit 0' TERM
  sleep "$seconds" & nap=$!; wait "$nap" && trap '' TERM && reap "$pid" ) </dev/null >/dev/null 2>&1 &
dog=$!
wait "$pid"; code=$?
kill "$dog" 2>/dev/null
exit "$code"
"""

STATS = r"""
n=0; for d in /proc/[0-9]*; do n=$((n+1)); done
m=$(cat /sys/fs/cgroup/memory.current 2>/dev/null ||
   cat /sys/fs/cgroup/memory/memory.usage_in_bytes 2>/dev/null || echo 0)
echo "$n $m"
"""


def command(script: str, name: str, *args: str) -> list[str]:
    """``sh -c SCRIPT NAME ARGS...``: the arguments arrive as ``$1...``, never parsed as shell."""
    return ["sh", "-c", script, name, *args]


def refusal(code: int, stderr: bytes) -> KubegateError | None:
    """The error a script refused with (its exit code ``REFUSED``), else ``None``."""
    text = stderr.decode(errors="replace").strip()
    if code != REFUSED or not text.startswith(_MARK):
        return None
    status, _, message = text[len(_MARK):].partition(" ")
    kind = _ERRORS.get(int(status) if status.isdigit() else 400, BadRequest)
    return kind(message or "refused by the sandbox")
