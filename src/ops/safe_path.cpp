#include "ops/safe_path.hpp"

#include <fmt/format.h>

#include "ops/module.hpp"

namespace tunnel::ops {

namespace {

// POSIX sh (dash, bash, busybox ash); GNU coreutils for stat -c, mv -T,
// dd iflag=nofollow. Names start with tw_ so they cannot clash with a
// module's own variables. Messages go to tw_err; tw_die prints it and exits 4.
constexpr std::string_view library = R"SH(unset CDPATH
tw_me=$(id -u)
tw_staged= tw_s= tw_at=
tw_nl='
'
tw_die() { printf '%s\n' "${tw_err:-failed}" >&2; exit 4; }
tw_here() { tw_h=$(pwd -P); if [ "$tw_h" = / ]; then printf /; else printf '%s/' "$tw_h"; fi; }
# tw_at: "UID MODE DEV:INODE USER GROUP" of the current directory, one stat per directory entered.
tw_look() { tw_at=$(stat -c '%u %a %d:%i %U %G' .); }
# tw_enter stats / and every prefix of its path in one go (tw_pre, a line each). While the
# walk has gone only through directories only root (and this user) can change, and through no
# link, nobody else can have changed which directory a prefix names, and nobody else can make
# a directory trusted (that takes chown or chmod by its owner, root), so the next line
# describes the directory just entered. After a link, "..", or a directory others can change,
# each directory is looked at (stat) once entered.
tw_next() {
  if [ -n "$tw_pre" ]; then
    tw_at=${tw_pre%%"$tw_nl"*}
    case $tw_pre in *"$tw_nl"*) tw_pre=${tw_pre#*"$tw_nl"} ;; *) tw_pre= ;; esac
  else
    tw_look
  fi
}
# Can only root and this script's user change the current directory's entries?
tw_trusted() {
  set -- $tw_at
  { [ "${1:-x}" = 0 ] || [ "${1:-x}" = "$tw_me" ]; } && [ $((0${2:-7} & 022)) -eq 0 ]
}
# Who else can (for messages).
tw_who() {
  set -- $tw_at
  if [ $((0${2:-2} & 002)) -ne 0 ]; then echo 'every user'
  elif [ $((0$2 & 020)) -ne 0 ] && [ "$4" = root ]; then echo "group $5"
  elif [ $((0$2 & 020)) -ne 0 ]; then echo "user $4 and group $5"
  else echo "user $4"; fi
}
# tw_enter DIR [create]: cd into absolute DIR one component at a time (see safe_path.hpp).
# Fails with tw_err set; tw_missing=1 when a component does not exist.
tw_enter() {
  tw_path=$1 tw_create=${2:-} tw_rest=$1 tw_hops=0 tw_err= tw_missing= tw_p= tw_r=$1
  set -- /
  while [ -n "$tw_r" ]; do
    tw_x=${tw_r%%/*}
    case $tw_r in */*) tw_r=${tw_r#*/} ;; *) tw_r= ;; esac
    case $tw_x in '' | .) continue ;; ..) break ;; esac
    tw_p=$tw_p/$tw_x
    set -- "$@" "$tw_p"
  done
  tw_pre=$(stat -c '%u %a %d:%i %U %G' -- "$@" 2>/dev/null)
  cd -P / && tw_next || { tw_err='cannot enter /'; return 1; }
  while [ -n "$tw_rest" ]; do
    tw_c=${tw_rest%%/*}
    case $tw_rest in */*) tw_rest=${tw_rest#*/} ;; *) tw_rest= ;; esac
    case $tw_c in
    '' | .) continue ;;
    ..) tw_pre=; cd -P .. && tw_look || return 1; continue ;;
    esac
    tw_up=
    if tw_trusted; then
      if [ -L "./$tw_c" ]; then
        tw_hops=$((tw_hops + 1))
        tw_t=$(readlink -- "./$tw_c") || tw_t=
        if [ "$tw_hops" -gt 40 ] || [ -z "$tw_t" ]; then
          tw_err="$tw_path: cannot resolve the symbolic link $(tw_here)$tw_c"; return 1
        fi
        case $tw_t in /*) cd -P / && tw_look || return 1 ;; esac
        tw_rest=$tw_t/$tw_rest tw_pre=
        continue
      fi
    elif [ -L "./$tw_c" ]; then
      tw_err="$(tw_here)$tw_c is a symbolic link in $(pwd -P), which $(tw_who) can change: refusing to follow it as $(id -un) (it could point at another account's files); replace it with a real directory"
      return 1
    else
      set -- $tw_at
      tw_up=$3 tw_pre=
    fi
    if [ ! -e "./$tw_c" ]; then
      if [ "$tw_create" != create ]; then tw_err="$(tw_here)$tw_c does not exist"; tw_missing=1; return 1; fi
      mkdir -- "./$tw_c" || { tw_err="cannot create $(tw_here)$tw_c"; return 1; }
    fi
    if [ ! -d "./$tw_c" ]; then tw_err="$(tw_here)$tw_c is not a directory"; return 1; fi
    cd -P -- "./$tw_c" || { tw_err="cannot enter $(tw_here)$tw_c"; return 1; }
    if [ -z "$tw_up" ]; then
      tw_next || return 1
      continue
    fi
    # Entered from a directory others can change: its .. must be where we came from.
    set -- $(stat -c '%u %a %d:%i %U %G' . ..)
    tw_at="$1 $2 $3 $4 $5"
    if [ "${8:-}" != "$tw_up" ]; then
      tw_err="$tw_path: $tw_c was replaced by a symbolic link while it was being entered (it is in a directory someone else can change): refusing"
      return 1
    fi
  done
}
# tw_probe TAG PATH [content]: TAG.stat MODE OWNER GROUP SIZE TYPE (of the entry itself, never
# a link's target), TAG.b64/TAG.sha256 of a regular file, TAG.absent, TAG.untrusted WHO when
# others can change its directory, TAG.refused WHY.
tw_probe() {
  tw_n=${2##*/} tw_d=${2%/*}
  if ! tw_enter "${tw_d:-/}"; then
    if [ -n "$tw_missing" ]; then echo "$1.absent"; else printf '%s.refused %s\n' "$1" "$tw_err"; fi
    return 0
  fi
  if [ ! -e "./$tw_n" ] && [ ! -L "./$tw_n" ]; then echo "$1.absent"; return 0; fi
  tw_tag=$1 tw_want=${3:-} tw_safe=1
  tw_trusted || { tw_safe=; printf '%s.untrusted %s\n' "$tw_tag" "$(tw_who)"; }
  tw_st=$(stat -c '%h %s %a %U %G %F' -- "./$tw_n") || return 0
  set -- $tw_st
  printf '%s.stat %s %s %s %s %s\n' "$tw_tag" "$3" "$4" "$5" "$2" "${tw_st#* * * * * }"
  [ "$tw_want" = content ] && [ -f "./$tw_n" ] && [ ! -L "./$tw_n" ] || return 0
  if [ -z "$tw_safe" ] && [ "$1" != 1 ]; then
    printf '%s.refused %s%s has %s hard links and is in %s, which %s can change: refusing to read it as %s (it could be a link to a file they may not read); remove the extra links\n' "$tw_tag" "$(tw_here)" "$tw_n" "$1" "$(pwd -P)" "$(tw_who)" "$(id -un)"
    return 0
  fi
  set -- "$tw_tag" "$2"
  if [ "$2" -le "$tw_limit" ] && [ -n "$tw_safe" ]; then
    printf '%s.b64 ' "$1"; base64 -w0 -- "./$tw_n"; echo
  elif [ "$2" -le "$tw_limit" ]; then
    printf '%s.b64 ' "$1"; dd if="./$tw_n" iflag=nofollow,nonblock status=none | base64 -w0; echo
  else
    printf '%s.sha256 ' "$1"; dd if="./$tw_n" iflag=nofollow,nonblock status=none | sha256sum | cut -d' ' -f1
  fi
}
# NAME (here) is about to be replaced by a file: refuse a directory.
tw_replaceable() {
  if [ -d "./$1" ] && [ ! -L "./$1" ]; then
    tw_err="$(tw_here)$1 is a directory; a file cannot replace it (remove it first)"; return 1
  fi
}
# Makes and enters a 0700 staging directory here: only this user can change its entries,
# and nobody else can move it to another parent, so .. stays the target directory.
tw_stage() {
  set -- $tw_at
  tw_up=$3
  tw_s=$(mktemp -d ./.tunnel-XXXXXX) || { tw_err="cannot create a temporary directory in $(pwd -P)"; return 1; }
  cd -P -- "$tw_s" || { tw_err="cannot enter $(tw_here)$tw_s"; return 1; }
  set -- $(stat -c '%u %a %d:%i' . ..)
  if [ "$1 $2 ${6:-}" != "$tw_me 700 $tw_up" ]; then
    tw_err="the temporary directory $tw_s was replaced while it was being entered: refusing"; return 1
  fi
  tw_staged=1
}
tw_unstage() {
  if [ -n "$tw_staged" ]; then rm -f -- ./new ./b; cd -P .. && rmdir -- "$tw_s" 2>/dev/null; fi
  tw_staged= tw_s=
  return 0
}
# In the staging directory: keeps ../NAME (a regular file) as ../NAME.YYYYmmddTHHMMSS~.
tw_backup() {
  [ -f "../$1" ] && [ ! -L "../$1" ] || return 0
  cp -P -p -- "../$1" ./b && mv -fT -- ./b "../$1.$(date +%Y%m%dT%H%M%S)~"
}
# In the staging directory: tw_ref_owner (uid:gid) and tw_ref_mode of ../NAME when it is a
# regular file, else empty.
tw_ref() {
  tw_ref_owner= tw_ref_mode=
  [ -f "../$1" ] && [ ! -L "../$1" ] || return 0
  set -- $(stat -c '%u:%g %a' -- "../$1")
  tw_ref_owner=$1 tw_ref_mode=$2
}
)SH";

}  // namespace

std::string_view safe_path_library() {
    return library;
}

std::string script_prologue() {
    return fmt::format("PATH=\"$PATH:/usr/sbin:/sbin\"; export PATH\ntw_limit={}\n{}",
                       probe_content_limit, library);
}

std::pair<std::string, std::string> split_path(std::string_view path) {
    auto slash = path.rfind('/');
    if (slash == std::string_view::npos) return {"/", std::string(path)};
    std::string dir(path.substr(0, slash));
    if (dir.empty()) dir = "/";
    return {dir, std::string(path.substr(slash + 1))};
}

}  // namespace tunnel::ops
