# Sourced by scripts/serve and scripts/test: `debian_need WHAT CMD PKG [CMD PKG ...]` installs
# each Debian package PKG whose command (or absolute path) CMD is missing, in one apt-get run.
debian_need() {
    local what="$1" need=() sudo=""
    shift
    while [ $# -ge 2 ]; do
        if [[ "$1" == /* ]]; then
            [ -x "$1" ] || need+=("$2")
        else
            command -v "$1" >/dev/null 2>&1 || need+=("$2")
        fi
        shift 2
    done
    [ ${#need[@]} -gt 0 ] || return 0
    echo "$what: installing ${need[*]} (Debian packages)" >&2
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
}
