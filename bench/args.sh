# shellcheck shell=sh disable=SC2154
# args.sh: argument checks shared by the bench scripts (sourced; the caller sets $me, the name
# its messages start with).

# need_whole NAME VALUE [LO HI]: exits 2 with a message naming NAME (and the bounds) unless
# VALUE is a whole number, within [LO, HI] when they are given.
need_whole() {
  case $2 in
    '' | *[!0-9]*) echo "$me: $1 must be a whole number, got '$2'" >&2; exit 2 ;;
  esac
  if [ $# -ge 4 ] && { [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; }; then
    echo "$me: $1 must be within [$3, $4], got $2" >&2
    exit 2
  fi
}
