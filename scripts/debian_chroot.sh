#!/usr/bin/env bash
# Proves the project on another Debian release, as a new user there would run it:
#   scripts/debian_chroot.sh RELEASE [COMMAND]      (root; RELEASE e.g. trixie or sid)
# 1. Once per RELEASE and apt package list: a minimal debootstrap chroot with the project's apt
#    packages (scripts/setup_env.sh --system), cached as a tarball in $DEBIAN_CHROOT_CACHE (default
#    $XDG_CACHE_HOME/growing-pde-nets, else /var/cache/growing-pde-nets) and unpacked beside it.
# 2. Every run: a fresh copy of that chroot (an overlay on the unpacked tree, so the cache is never
#    written to; a full copy where overlayfs is missing), this work tree's files as git sees them
#    (tracked and untracked-but-not-ignored: no .venv, data or results of the host) at /build/repo
#    and ../shared at /build/shared, then COMMAND (default: make setup, make test, make figures).
#    /proc, /sys, /dev, /dev/pts and /dev/shm are mounted while it runs and unmounted on every exit.
# The chroot's results/smoke/summary.md and its smoke runs' metrics.json, meta.json and config.json
# are copied to results/runs/debian-RELEASE/ and, when this machine has its own smoke runs (a native
# make figures ran first), every metric must agree (scripts/compare_runs.py: float64 runs to roundoff,
# float32 runs to roundoff under the same torch build and to a measured tolerance across builds).
set -euo pipefail
cd "$(dirname "$0")/.."

RELEASE=${1:-}
COMMAND=${2:-"make setup && make test && make figures"}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${DEBIAN_CHROOT_CACHE:-${XDG_CACHE_HOME:-/var/cache}/growing-pde-nets}
TRIES=4   # debootstrap and apt-get are retried: a mirror hiccup must not fail a run

die() { echo "error: $*" >&2; exit 1; }
retry() {   # retry N CMD...: run CMD up to N times, waiting 30, 60, 120 ... s in between
    local n=$1 i; shift
    for ((i = 1; i <= n; i++)); do
        "$@" && return 0
        [ "$i" -lt "$n" ] && { echo "debian-chroot: attempt $i of '$*' failed; retrying in $((30 << (i - 1))) s" >&2; sleep $((30 << (i - 1))); }
    done
    return 1
}
[ -n "$RELEASE" ] || die "usage: scripts/debian_chroot.sh RELEASE [COMMAND] (RELEASE e.g. trixie, sid)"
[[ "$RELEASE" =~ ^[a-z]+$ ]] || die "release '$RELEASE' is not a Debian codename (e.g. trixie, sid)"
[ "$(id -u)" = 0 ] || die "building and entering a chroot needs root"
install_debootstrap() { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
command -v debootstrap >/dev/null || retry "$TRIES" install_debootstrap || die "debootstrap is missing and apt-get could not install it"
[ -f "/usr/share/debootstrap/scripts/$RELEASE" ] || die "this debootstrap does not know release '$RELEASE'"

# the cache key: the apt package lists (a new Debian point release does not rebuild it: delete the cache)
KEY=$(sha256sum scripts/apt_packages.sh | cut -c1-12)
TARBALL="$CACHE/debian-$RELEASE-$KEY.tar"
UNPACKED="$CACHE/debian-$RELEASE-$KEY"   # complete when it holds .unpacked
WORK=""     # this run's scratch directory, removed on exit
CHROOT=""   # the chroot being built or run (inside WORK)

mounted_under() { awk -v r="$1/" 'index($2 "/", r) == 1 {print $2}' /proc/mounts | sort -r; }

unmount_all() {   # deepest first
    [ -n "$WORK" ] || return 0
    local m
    for m in $(mounted_under "$WORK"); do umount "$m" 2>/dev/null || umount -l "$m"; done
}

remove_work() {   # delete the scratch directory only when nothing is mounted in it any more
    [ -n "$WORK" ] && [ -d "$WORK" ] || return 0
    if [ -n "$(mounted_under "$WORK")" ]; then
        echo "error: still mounted under $WORK, left in place: $(mounted_under "$WORK" | tr '\n' ' ')" >&2
        return 1
    fi
    rm -rf --one-file-system "$WORK"
    WORK=""
}

cleanup() { unmount_all; remove_work; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

remove_stale_work() {   # what a killed run (SIGKILL, power loss) left: its mounts and scratch directory
    local stale owner
    for stale in "$CACHE"/build-"$RELEASE".* "$CACHE"/run-"$RELEASE".*; do
        [ -d "$stale" ] || continue
        owner=$(cat "$stale/.owner" 2>/dev/null || true)
        [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null && continue   # a run in progress
        echo "debian-chroot: removing $stale, left by an interrupted run"
        WORK=$stale
        cleanup || die "could not clean up $stale"
    done
}

new_work() {   # new_work NAME: a fresh scratch directory in the cache (apt downloads as user _apt)
    WORK=$(mktemp -d "$CACHE/$1-$RELEASE.XXXXXX")
    chmod 755 "$WORK"
    echo $$ > "$WORK/.owner"   # this run is alive while this process is
}

mount_system() {
    mount -t proc proc "$CHROOT/proc"
    mount -t sysfs sysfs "$CHROOT/sys"            # hwloc (Open MPI) aborts without /sys
    mount --bind /dev "$CHROOT/dev"
    mount --make-private "$CHROOT/dev"            # the mounts below must not reach the host's /dev
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$CHROOT/dev/pts"
    mount -t tmpfs -o size=4g tmpfs "$CHROOT/dev/shm"   # Open MPI's shared-memory transport
    cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
}

in_chroot() {   # in_chroot 'shell command': a clean environment, as root
    chroot "$CHROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive /bin/bash -c "$1"
}

build_tarball() {
    mkdir -p "$CACHE"
    new_work build
    CHROOT="$WORK/root"
    echo "debian-chroot: building $RELEASE in $CHROOT (once; cached as $TARBALL)"
    local t0=$SECONDS log="$CACHE/debootstrap-$RELEASE.log"
    bootstrap() {
        unmount_all   # a failed debootstrap may leave its /proc and /sys mounts
        [ -z "$(mounted_under "$WORK")" ] && rm -rf --one-file-system "$CHROOT"
        debootstrap --variant=minbase --include=ca-certificates,make "$RELEASE" "$CHROOT" "$MIRROR" \
            > "$log" 2>&1 || { tail -5 "$log" >&2; return 1; }
    }
    retry "$TRIES" bootstrap || die "debootstrap of $RELEASE from $MIRROR failed $TRIES times (log: $log)"
    echo "debian-chroot: debootstrap done in $((SECONDS - t0)) s"
    # retries for mirror hiccups; a mirror that lags behind (a snapshot) serves sid's Release past
    # its 7-day Valid-Until, which this throw-away test chroot accepts
    printf 'Acquire::Retries "5";\nAcquire::Check-Valid-Until "false";\n' > "$CHROOT/etc/apt/apt.conf.d/80test-chroot"
    mount_system
    mkdir -p "$CHROOT/build/scripts"
    cp scripts/setup_env.sh scripts/apt_packages.sh "$CHROOT/build/scripts/"
    log="$CACHE/apt-$RELEASE.log"
    echo "debian-chroot: installing the project's apt packages (log: $log)"
    install_packages() {
        in_chroot "dpkg --configure -a && bash /build/scripts/setup_env.sh --system" > "$log" 2>&1 \
            || { grep -E "^(E:|dpkg: error)" "$log" | tail -5 >&2; return 1; }
    }
    retry "$TRIES" install_packages || die "installing the project's apt packages in $RELEASE failed $TRIES times (log: $log)"
    in_chroot "apt-get clean && rm -rf /build"
    unmount_all
    tar -C "$CHROOT" -cf "$TARBALL.part" . && mv "$TARBALL.part" "$TARBALL"
    remove_work
    find "$CACHE" -maxdepth 1 -name "debian-$RELEASE-*" ! -name "debian-$RELEASE-$KEY*" -exec rm -rf --one-file-system {} +
    echo "debian-chroot: $RELEASE cached in $((SECONDS - t0)) s ($(du -h "$TARBALL" | cut -f1))"
}

unpack() {   # the read-only tree that every run overlays
    echo "debian-chroot: unpacking $TARBALL"
    rm -rf --one-file-system "$UNPACKED"
    mkdir -p "$UNPACKED"
    tar -C "$UNPACKED" -xf "$TARBALL" && touch "$UNPACKED/.unpacked"
}

fresh_chroot() {   # CHROOT: a fresh writable copy of the unpacked tree
    new_work run
    CHROOT="$WORK/root"
    mkdir -p "$WORK/upper" "$WORK/overlay-work" "$CHROOT"
    if ! mount -t overlay overlay -o "lowerdir=$UNPACKED,upperdir=$WORK/upper,workdir=$WORK/overlay-work" \
            "$CHROOT" 2>/dev/null; then
        cp -a "$UNPACKED/." "$CHROOT/"   # no overlayfs here: a full copy
    fi
}

run_in_fresh_chroot() {
    fresh_chroot
    mount_system
    mkdir -p "$CHROOT/build/repo"
    git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf - | tar -C "$CHROOT/build/repo" -xf -
    [ -d ../shared ] && cp -a ../shared "$CHROOT/build/shared"
    echo "debian-chroot: running '$COMMAND' in $RELEASE ($(in_chroot '. /etc/os-release; echo $PRETTY_NAME'))"
    local rc=0
    in_chroot "cd /build/repo && $COMMAND" || rc=$?
    local out="results/runs/debian-$RELEASE" runs="results/runs/smoke"
    rm -rf "$out"
    if [ -d "$CHROOT/build/repo/$runs" ]; then   # the smoke summary and every run's metrics and versions
        mkdir -p "$out"
        cp "$CHROOT/build/repo/results/smoke/summary.md" "$out/" 2>/dev/null || true
        (cd "$CHROOT/build/repo/$runs" && find . \( -name metrics.json -o -name meta.json -o -name config.json \) -print0 \
            | tar --null -T - -cf -) | (mkdir -p "$out/smoke" && tar -C "$out/smoke" -xf -)
        echo "debian-chroot: the chroot's smoke runs are in $out/smoke"
    fi
    [ "$rc" = 0 ] || die "'$COMMAND' failed in $RELEASE (exit $rc)"
    if [ -d "$out/smoke" ] && [ -d "$runs" ]; then   # this machine's smoke runs: same metrics?
        echo "debian-chroot: metrics of $RELEASE against this machine's $runs:"
        python3 scripts/compare_runs.py "$runs" "$out/smoke" || die "$RELEASE's metrics differ"
    fi
    echo "debian-chroot: $RELEASE passed"
}

mkdir -p "$CACHE"
exec 9> "$CACHE/.lock-$RELEASE"   # one builder per release: a second run waits for the cache here
flock 9
remove_stale_work
[ -f "$TARBALL" ] || build_tarball
[ -f "$UNPACKED/.unpacked" ] || unpack
flock -u 9
run_in_fresh_chroot
