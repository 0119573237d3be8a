#!/usr/bin/env bash
# The arm64 stage: install and run the shelf on arm64 Debian roots under emulation (qemu-user via
# binfmt_misc), the way an installer would on a Raspberry Pi, and compare with this machine (x86).
#
#   sudo tests/arm64/run.sh            Bookworm then Trixie (CI runs it from .ci/run)
#   SMARTSHELF_ARM64_SUITES=bookworm sudo tests/arm64/run.sh
#
# Per root: build it with mmdebstrap (or reuse the cached one whose inputs match), install the
# stand-in packages for Raspberry Pi's own archive (tests/arm64/standins), copy this checkout in
# as /home/pi/smartshelf and run `sudo ./setup.sh` there with a board file naming a Raspberry Pi 5;
# then as the smartshelf user: run --check-config, doctor --json, demo --json --fast, analyze;
# on Bookworm also the unit tests of core, device and models with its Python 3.11 and numpy 1.24. Outputs are
# compared with the same commands on x86 by tests/arm64/compare.py (table at the end).
#
# Needs root (chroot, mounts, binfmt_misc). Skips (exit 0, one line) only where binfmt_misc cannot
# be registered; any other failure fails the stage. Docs: docs/arm64.md.
#
# Environment:
#   SMARTSHELF_ARM64_CACHE    cache dir outside the repo (default /var/cache/smartshelf-arm64):
#                             roots/<suite>-<key>.tar, qemu/<version>/, runs/last/ (outputs, table)
#   SMARTSHELF_ARM64_SUITES   roots to run (default "bookworm trixie")
#   SMARTSHELF_ARM64_OUT      outputs and table (default $CACHE/runs/last; emptied at the start)
#   SMARTSHELF_ARM64_CPU      emulated CPU (default cortex-a76, a Pi 5's; cortex-a72 is a Pi 4's)
#   SMARTSHELF_ARM64_REBUILD  1: rebuild the roots even when a cached one matches
#   SMARTSHELF_ARM64_MIRROR   Debian mirror URL (default: the first Debian one in this machine's
#                             apt sources); SMARTSHELF_ARM64_SECURITY_MIRROR likewise
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${HERE}/../.." && pwd)"
CACHE="${SMARTSHELF_ARM64_CACHE:-/var/cache/smartshelf-arm64}"
read -r -a SUITES <<< "${SMARTSHELF_ARM64_SUITES:-bookworm trixie}"
QEMU_CPU_MODEL="${SMARTSHELF_ARM64_CPU:-cortex-a76}"
REBUILD="${SMARTSHELF_ARM64_REBUILD:-0}"
# Part of each root's cache key: bump it when the way a root is built changes.
RECIPE_VERSION=1
# qemu-user >= 10 (Debian 12's 7.2 crashes inside TFLite on a Trixie root): Trixie's package.
QEMU_SUITE=trixie
QEMU_MIN_MAJOR=10
# What the cached root holds besides the minimal base: the distribution's python stack that
# setup.sh asks for (numpy and OpenCV from apt, as on Raspberry Pi OS), sudo, systemctl, pytest.
ROOT_PACKAGES=(ca-certificates sudo systemd python3 python3-venv python3-pip python3-numpy
    python3-opencv python3-pytest git)
# A few images for `smartshelf analyze` (paths in the checkout; faces and one without).
ANALYZE_IMAGES=(device/demo/frames/frame_000.jpg device/demo/frames/frame_010.jpg
    device/demo/frames/frame_013.jpg device/demo/frames/frame_016.jpg device/demo/frames/frame_020.jpg
    device/demo/frames/frame_024.jpg)
# The unit tests of what runs on the shelf, in the Bookworm root. Left out: the recommender
# evaluations (development tools, 10-20 s each natively, minutes under emulation).
ROOT_PYTEST=(-m unit -k "not evaluate" tests/core tests/device tests/models)
CHECKOUT_IN_ROOT=/home/pi/smartshelf
MODEL_FILE_IN_ROOT=/etc/smartshelf-arm64-stage/device-tree-model
CONFIG_IN_ROOT=/etc/smartshelf/config.toml
VERSIONS_PY='import platform, numpy, cv2; print(platform.machine(), "python", platform.python_version(), "numpy", numpy.__version__, "opencv", cv2.__version__)'
MISSING_PYC_PY='import importlib.util as u, pathlib, sys; print(sum(not pathlib.Path(u.cache_from_source(p)).exists() for p in pathlib.Path(sys.argv[1]).rglob("*.py")))'

RUN_DIR="${SMARTSHELF_ARM64_OUT:-${CACHE}/runs/last}"
WORK="${CACHE}/work"
started=${SECONDS}
STEP_NAMES=()
STEP_TIMES=()
MOUNTS=()
BINFMT_ENTRY=""

say() { printf 'arm64: %s\n' "$*"; }
die() { printf 'arm64: error: %s\n' "$*" >&2; exit 1; }
skip() { printf 'arm64: SKIPPED: %s\n' "$*"; exit 0; }

# timed LABEL CMD...: run CMD (with set -e in force: it is not called inside a condition), print
# and record how long it took. A failure exits the stage; the EXIT trap names the step.
CURRENT_STEP=""
STEP_T0=0
timed() {
    CURRENT_STEP="$1"
    STEP_T0=${SECONDS}
    shift
    printf '\n--> %s\n' "${CURRENT_STEP}"
    "$@"
    STEP_NAMES+=("${CURRENT_STEP}")
    STEP_TIMES+=("$((SECONDS - STEP_T0))")
    printf -- '--> %s: %ss\n' "${CURRENT_STEP}" "$((SECONDS - STEP_T0))"
    CURRENT_STEP=""
}

print_times() {
    local i
    printf '\n%-52s %8s\n' "arm64 stage step" "seconds"
    for i in "${!STEP_NAMES[@]}"; do
        printf '%-52s %8s\n' "${STEP_NAMES[${i}]}" "${STEP_TIMES[${i}]}"
    done
    printf '%-52s %8s\n' "total" "$((SECONDS - started))"
}

unmount_all() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[${i}]}" 2>/dev/null || umount -l "${MOUNTS[${i}]}" 2>/dev/null || true
    done
    MOUNTS=()
}

cleanup() {
    local rc=$?
    if ((rc != 0)) && [[ -n "${CURRENT_STEP}" ]]; then
        STEP_NAMES+=("${CURRENT_STEP} (FAILED, exit ${rc})")
        STEP_TIMES+=("$((SECONDS - STEP_T0))")
        print_times >&2
        printf 'arm64: error: step failed: %s\n' "${CURRENT_STEP}" >&2
    fi
    unmount_all
    if [[ -n "${BINFMT_ENTRY}" && -e "/proc/sys/fs/binfmt_misc/${BINFMT_ENTRY}" ]]; then
        echo -1 > "/proc/sys/fs/binfmt_misc/${BINFMT_ENTRY}" || true
    fi
}
trap cleanup EXIT

# --- binfmt_misc and qemu -----------------------------------------------------------------------
# The machine's apt sources: the first Debian archive and security URIs (deb822 or one-line files).
apt_uris() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f "${f}" ]] || continue
        sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\([^[:space:]]*\).*/\2/p' "${f}"
    done | tr ' ' '\n' | sed '/^$/d'
}

find_mirrors() {
    local uris
    uris="$(apt_uris)"
    MIRROR="${SMARTSHELF_ARM64_MIRROR:-$(grep -E '/debian/?$' <<< "${uris}" | head -n 1 || true)}"
    SECURITY_MIRROR="${SMARTSHELF_ARM64_SECURITY_MIRROR:-$(grep -E '/debian-security/?$' <<< "${uris}" | head -n 1 || true)}"
    [[ -n "${MIRROR}" ]] || die "no Debian archive in this machine's apt sources (/etc/apt/sources.list*); set SMARTSHELF_ARM64_MIRROR"
    MIRROR="${MIRROR%/}"
    SECURITY_MIRROR="${SECURITY_MIRROR%/}"
    say "Debian mirror from this machine's apt sources: ${MIRROR} (security: ${SECURITY_MIRROR:-none})"
}

# A private apt (its own sources, lists and cache under $CACHE/qemu-apt) that downloads Trixie's
# qemu-user .deb from the same mirror; its static qemu-aarch64 is extracted into $CACHE/qemu/.
# The host's own apt state and packages are never touched.
fetch_qemu() {
    local dir="${CACHE}/qemu-apt" opts version deb
    mkdir -p "${dir}/lists/partial" "${dir}/archives/partial" "${dir}/etc"
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' "${MIRROR}" "${QEMU_SUITE}" \
        > "${dir}/etc/sources.list"
    opts=(-o "Dir::Etc::SourceList=${dir}/etc/sources.list" -o Dir::Etc::SourceParts=/nonexistent
        -o "Dir::State::Lists=${dir}/lists" -o "Dir::Cache=${dir}" -o "Dir::Cache::Archives=${dir}/archives"
        -o Dir::State::status=/dev/null -o APT::Sandbox::User=root -o APT::Architecture=amd64)
    # The folder name has no ':' (binfmt_misc's field separator): 1:10.0.13+ds-0 -> 10.0.13+ds-0.
    version="$(cat "${CACHE}/qemu/current" 2>/dev/null || true)"
    if [[ -n "${version}" && -x "${CACHE}/qemu/${version}/qemu-aarch64" ]]; then
        say "qemu-user ${version} (from ${QEMU_SUITE}) cached in ${CACHE}/qemu/${version}"
        QEMU_BIN="${CACHE}/qemu/${version}/qemu-aarch64"
        return 0
    fi
    apt-get "${opts[@]}" -qq update
    version="$(apt-cache "${opts[@]}" show --no-all-versions qemu-user | sed -n 's/^Version: //p' | head -n 1)"
    [[ -n "${version}" ]] || die "no qemu-user in ${QEMU_SUITE} on ${MIRROR}"
    version="${version#*:}"
    (cd "${dir}/archives" && apt-get "${opts[@]}" -qq download qemu-user)
    deb="$(find "${dir}/archives" -maxdepth 1 -name 'qemu-user_*_amd64.deb' -print | sort | tail -n 1)"
    rm -rf "${dir}/x"
    dpkg-deb -x "${deb}" "${dir}/x"
    mkdir -p "${CACHE}/qemu/${version}"
    install -m 0755 "${dir}/x/usr/bin/qemu-aarch64" "${CACHE}/qemu/${version}/qemu-aarch64"
    rm -rf "${dir}/x" "${deb}"
    echo "${version}" > "${CACHE}/qemu/current"
    QEMU_BIN="${CACHE}/qemu/${version}/qemu-aarch64"
    say "qemu-user ${version} from ${QEMU_SUITE} extracted to ${QEMU_BIN}"
}

# Register our qemu for arm64 ELF files under a name of our own (newest entry wins for the same
# magic; F: the kernel opens the interpreter now, so it works inside the chroot; C: setuid
# programs such as sudo get their credentials, as natively). Removed at exit.
register_binfmt() {
    local major
    major="$("${QEMU_BIN}" --version | sed -n 's/^qemu-aarch64 version \([0-9]*\)\..*/\1/p')"
    ((major >= QEMU_MIN_MAJOR)) || die "${QEMU_BIN} is qemu ${major}; the stage needs qemu >= ${QEMU_MIN_MAJOR}"
    BINFMT_ENTRY="smartshelf-aarch64-$$"
    local magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
    local mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
    local err rc=0
    err="$( { printf ':%s:M::%s:%s:%s:FC' "${BINFMT_ENTRY}" "${magic}" "${mask}" "${QEMU_BIN}" \
        > /proc/sys/fs/binfmt_misc/register; } 2>&1)" || rc=$?
    if ((rc != 0)); then
        BINFMT_ENTRY=""
        # Only a refusal by the machine is a skip; anything else (a bad entry) is a failure.
        case "${err}" in
            *"Permission denied"* | *"Operation not permitted"* | *"Read-only file system"*)
                skip "this machine cannot register a binfmt_misc entry (${err##*: }): no arm64 emulation" ;;
            *) die "registering ${QEMU_BIN} with binfmt_misc failed: ${err}" ;;
        esac
    fi
    say "binfmt_misc: arm64 ELF -> ${QEMU_BIN} (entry ${BINFMT_ENTRY}, QEMU_CPU=${QEMU_CPU_MODEL})"
}

setup_emulation() {
    ((EUID == 0)) || skip "the arm64 stage needs root to register binfmt_misc and chroot (run: sudo $0)"
    if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
    fi
    [[ -e /proc/sys/fs/binfmt_misc/register ]] \
        || skip "this machine cannot mount binfmt_misc (/proc/sys/fs/binfmt_misc): no arm64 emulation"
    local tool
    for tool in mmdebstrap dpkg-deb apt-get chroot; do
        command -v "${tool}" >/dev/null || die "${tool} missing: run tests/install-tools.sh (as root)"
    done
    find_mirrors
    fetch_qemu
    register_binfmt
}

# --- roots --------------------------------------------------------------------------------------
root_sources() {
    local suite="$1"
    echo "deb ${MIRROR} ${suite} main"
    echo "deb ${MIRROR} ${suite}-updates main"
    [[ -z "${SECURITY_MIRROR}" ]] || echo "deb ${SECURITY_MIRROR} ${suite}-security main"
}

root_key() {
    local suite="$1"
    { echo "recipe ${RECIPE_VERSION} ${suite} arm64 minbase"; root_sources "${suite}"; printf '%s\n' "${ROOT_PACKAGES[@]}"; } \
        | sha256sum | cut -c1-16
}

# While mmdebstrap installs the packages, the root's dpkg runs under qemu but unpacks each .deb
# through this machine's own dpkg-deb (xz decompression natively: about 10x faster than emulated),
# copied into the root with its few libraries (an x86-64 program runs natively inside the chroot;
# its /usr/lib/x86_64-linux-gnu does not collide with the root's aarch64 one; apt's DPkg::Path
# puts /usr/local/bin first for the build). All of it is
# removed again before the root is packed, and the root is checked for leftovers.
# shellcheck disable=SC2016 # hooks: mmdebstrap runs them with the root as $1
NATIVE_DPKG_DEB_HOOK='set -e
marker="$1/usr/local/bin/.smartshelf-native-dpkg-deb"
mkdir -p "$1/usr/local/bin" "$1/usr/lib/x86_64-linux-gnu"
: > "$marker"
if [ ! -e "$1/lib64" ] && [ ! -L "$1/lib64" ]; then
    mkdir "$1/usr/lib64" && ln -s usr/lib64 "$1/lib64" && echo created-lib64 >> "$marker"
fi
for lib in $(ldd /usr/bin/dpkg-deb | grep -o "/[^ ]*\.so[^ ]*"); do cp -L "$lib" "$1/usr/lib/x86_64-linux-gnu/"; done
ln -sf /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$1/lib64/ld-linux-x86-64.so.2"
cp /usr/bin/dpkg-deb "$1/usr/local/bin/dpkg-deb"
chroot "$1" /usr/local/bin/dpkg-deb --version >/dev/null'
# shellcheck disable=SC2016
NATIVE_DPKG_DEB_CLEANUP='set -e
marker="$1/usr/local/bin/.smartshelf-native-dpkg-deb"
rm -f "$1/usr/local/bin/dpkg-deb" "$1/lib64/ld-linux-x86-64.so.2"
rm -rf "$1/usr/lib/x86_64-linux-gnu"
if grep -q created-lib64 "$marker"; then rm "$1/lib64"; rmdir "$1/usr/lib64"; fi
rm -f "$marker"
conf="$1/etc/apt/apt.conf.d/99mmdebstrap"
[ ! -f "$conf" ] || sed -i "/DPkg::Path/d" "$conf"'

# build_root SUITE: $CACHE/roots/SUITE-KEY.tar, built with mmdebstrap unless a matching one exists.
build_root() {
    local suite="$1" key tar
    key="$(root_key "${suite}")"
    tar="${CACHE}/roots/${suite}-${key}.tar"
    ROOT_TAR="${tar}"
    if [[ -f "${tar}" && "${REBUILD}" != 1 ]]; then
        say "cached ${suite} root ${tar} (key ${key}: recipe, sources, package list)"
        return 0
    fi
    mkdir -p "${CACHE}/roots"
    rm -rf "${CACHE}/roots/${suite}-"*
    local sources=()
    mapfile -t sources < <(root_sources "${suite}")
    say "building the ${suite} arm64 root with mmdebstrap (cache key ${key})"
    # shellcheck disable=SC2016 # the hooks' $1 is mmdebstrap's
    mmdebstrap --quiet --mode=root --variant=minbase --architectures=arm64 \
        --include="$(IFS=,; echo "${ROOT_PACKAGES[*]}")" \
        --aptopt='Acquire::Retries "3"' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --aptopt='DPkg::Path "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"' \
        --extract-hook="${NATIVE_DPKG_DEB_HOOK}" --customize-hook="${NATIVE_DPKG_DEB_CLEANUP}" \
        --customize-hook='chroot "$1" dpkg-query -W -f="\${db:Status-Abbrev} \${Package}\n" | grep -v "^ii " && exit 1 || true' \
        --customize-hook='! ls -d "$1"/usr/lib/x86_64-linux-gnu "$1"/usr/local/bin/dpkg-deb "$1"/usr/local/bin/.smartshelf-native-dpkg-deb "$1"/lib64/ld-linux-x86-64.so.2 2>/dev/null | grep .' \
        "${suite}" "${tar%.tar}.partial.tar" "${sources[@]}"
    mv "${tar%.tar}.partial.tar" "${tar}"
    say "${suite} root: $(du -h "${tar}" | cut -f1) in ${tar}"
}

mount_in() {
    local what="$1" dest="$2"
    shift 2
    mkdir -p "${dest}"
    mount "$@" "${what}" "${dest}"
    MOUNTS+=("${dest}")
}

# A fresh work root from the cached tar; host DNS and local CAs (a TLS-inspecting proxy's) copied
# in; /proc, /sys, /dev, /run mounted; the stand-ins as a local apt source; a Pi OS-like first user.
prepare_root() {
    local suite="$1"
    set_root "${WORK}/${suite}"
    unmount_all
    rm -rf "${ROOT}"
    mkdir -p "${ROOT}"
    tar -C "${ROOT}" --numeric-owner -xpf "${ROOT_TAR}"
    cp -L /etc/resolv.conf "${ROOT}/etc/resolv.conf"
    printf '127.0.1.1\t%s\n' "$(hostname)" >> "${ROOT}/etc/hosts"  # (sudo looks its host up)
    local ca
    for ca in /usr/local/share/ca-certificates/*.crt; do
        [[ -f "${ca}" ]] || continue
        install -D -m 0644 "${ca}" "${ROOT}/usr/local/share/ca-certificates/${ca##*/}"
        cat "${ca}" >> "${ROOT}/etc/ssl/certs/ca-certificates.crt"
    done
    mount_in proc "${ROOT}/proc" -t proc
    mount_in sysfs "${ROOT}/sys" -t sysfs
    mount_in /dev "${ROOT}/dev" --bind
    mount_in devpts "${ROOT}/dev/pts" -t devpts -o newinstance,ptmxmode=0666
    mount_in tmpfs "${ROOT}/run" -t tmpfs -o mode=0755
    mount_in tmpfs "${ROOT}/tmp" -t tmpfs -o mode=1777
    # Is it really our qemu that runs the root's programs?
    "${IN_ROOT[@]}" /bin/sleep 2 &
    local pid=$! exe
    sleep 1
    exe="$(readlink "/proc/${pid}/exe" || true)"
    wait "${pid}"
    [[ "${exe}" == "${QEMU_BIN}" ]] || die "arm64 programs run under ${exe:-?}, not ${QEMU_BIN}"
    say "the ${suite} root's programs run under ${exe} ($("${IN_ROOT[@]}" uname -m), $("${IN_ROOT[@]}" python3 --version))"

    # Stand-ins for Raspberry Pi's archive: a local apt source, like Pi OS's archive.raspberrypi.com.
    local pkgs="${ROOT}/opt/smartshelf-standins" dir deb
    mkdir -p "${pkgs}"
    for dir in "${HERE}"/standins/*/; do
        [[ -f "${dir}DEBIAN/control" ]] || continue
        deb="${pkgs}/$(basename "${dir}")_standin_all.deb"
        dpkg-deb --root-owner-group -Zxz --build "${dir}" "${deb}" >/dev/null
        {
            dpkg-deb -f "${deb}"
            echo "Filename: ./${deb##*/}"
            echo "Size: $(stat -c %s "${deb}")"
            echo "SHA256: $(sha256sum "${deb}" | cut -d' ' -f1)"
            echo
        } >> "${pkgs}/Packages"
    done
    echo "deb [trusted=yes] file:/opt/smartshelf-standins ./" > "${ROOT}/etc/apt/sources.list.d/smartshelf-standins.list"
    say "STAND-INS (not Raspberry Pi's packages; see tests/arm64/standins/README.md): $(sed -n 's/^Package: //p' "${pkgs}/Packages" | tr '\n' ' ')"
    # raspi-config comes installed with Raspberry Pi OS: so does its stand-in here.
    "${IN_ROOT[@]}" dpkg -i "/opt/smartshelf-standins/raspi-config_standin_all.deb" >/dev/null

    # Raspberry Pi OS: a first user (uid 1000) with password-less sudo; the board's model file.
    "${IN_ROOT[@]}" useradd --create-home --uid 1000 --shell /bin/bash pi
    echo 'pi ALL=(ALL) NOPASSWD: ALL' > "${ROOT}/etc/sudoers.d/010_pi-nopasswd"
    # Emulation plumbing only: sudo must pass the emulated CPU model (and the board file) on.
    echo 'Defaults env_keep += "QEMU_CPU SMARTSHELF_MODEL_FILE"' > "${ROOT}/etc/sudoers.d/020_smartshelf-arm64-stage"
    chmod 0440 "${ROOT}/etc/sudoers.d/010_pi-nopasswd" "${ROOT}/etc/sudoers.d/020_smartshelf-arm64-stage"
    install -D -m 0644 /dev/null "${ROOT}${MODEL_FILE_IN_ROOT}"
    printf 'Raspberry Pi 5 Model B Rev 1.0\0' > "${ROOT}${MODEL_FILE_IN_ROOT}"
    if [[ -n "$(find "${ROOT}/usr/local/share/ca-certificates" -name '*.crt' 2>/dev/null)" ]]; then
        printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "${ROOT}/etc/pip.conf"
    fi
}

# "${IN_ROOT[@]}" CMD...: CMD in the root as root, with a clean environment and the emulated CPU.
# "${AS_PI[@]}" 'CMD': the shell command line CMD as the first user, in the checkout, as at a
# terminal. (Arrays, not functions: a function called in a condition would run without set -e.)
set_root() {
    ROOT="$1"
    IN_ROOT=(chroot "${ROOT}" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        HOME=/root LANG=C.UTF-8 TERM=dumb QEMU_CPU="${QEMU_CPU_MODEL}")
    AS_PI=("${IN_ROOT[@]}" runuser -u pi -- env HOME=/home/pi USER=pi LOGNAME=pi
        SMARTSHELF_MODEL_FILE="${MODEL_FILE_IN_ROOT}" bash -c "cd ${CHECKOUT_IN_ROOT} && \"\$0\" \"\$@\"")
}

copy_checkout() {
    # What `git clone` would give (tracked files) plus this working tree's uncommitted changes.
    local dest="${ROOT}${CHECKOUT_IN_ROOT}"
    mkdir -p "${dest}"
    local files=() f
    while IFS= read -r -d '' f; do
        [[ ! -e "${REPO}/${f}" ]] || files+=("${f}")  # a deleted, not yet committed file is left out
    done < <(git -C "${REPO}" ls-files -z --cached --others --exclude-standard)
    tar -C "${REPO}" -cf - -- "${files[@]}" | tar -C "${dest}" -xf -
    "${IN_ROOT[@]}" chown -R pi:pi "${CHECKOUT_IN_ROOT}"
    say "checkout copied to ${CHECKOUT_IN_ROOT} ($(find "${dest}" -type f | wc -l) files)"
}

install_like_an_installer() {
    local out="$1"
    "${AS_PI[@]}" sudo ./setup.sh 2>&1 | tee "${out}/setup.log"
    grep -q 'raspi-config stand-in: nonint do_blanking 1' "${ROOT}/var/log/raspi-config-standin.log" \
        || die "setup.sh did not switch screen blanking off (raspi-config nonint do_blanking 1)"
    say "setup.sh ran raspi-config nonint do_blanking 1 (on the raspi-config stand-in)"
    local browsers
    # shellcheck disable=SC2016 # dpkg-query's format, not the shell's
    browsers="$("${IN_ROOT[@]}" dpkg-query -W -f='${Package} ${Status}\n' chromium chromium-browser 2>/dev/null || true)"
    [[ "${browsers}" != *"ok installed"* ]] || die "setup.sh installed a browser on a root without a desktop: ${browsers}"
    say "no desktop in the root (like Raspberry Pi OS Lite): no browser installed, kiosk not enabled"
    local missing
    missing="$("${IN_ROOT[@]}" /opt/smartshelf/current/venv/bin/python -c "${MISSING_PYC_PY}" /opt/smartshelf/current/)"
    [[ "${missing}" == 0 ]] || die "${missing} module(s) of the release have no .pyc after setup.sh"
    say "every module of the release is compiled"
}

second_setup_run() {
    local out="$1"
    "${AS_PI[@]}" sudo ./setup.sh > "${out}/setup-again.log" 2>&1
    grep -q 'nothing to do' "${out}/setup-again.log" || { cat "${out}/setup-again.log"; die "the second setup.sh run changed something"; }
    say "second setup.sh run: $(grep 'nothing to do' "${out}/setup-again.log" | tail -n 1)"
}

shelf_commands() {
    local out="$1" rc=0
    "${AS_PI[@]}" sudo -u smartshelf smartshelf run --check-config --config "${CONFIG_IN_ROOT}" 2>&1 | tee "${out}/check-config.txt"
    "${AS_PI[@]}" sudo -u smartshelf smartshelf doctor --json --config "${CONFIG_IN_ROOT}" \
        > "${out}/doctor.json" 2> "${out}/doctor.err" || rc=$?
    say "doctor exit status ${rc} (1 expected: no camera or GPIO behind the stand-ins)"
    "${AS_PI[@]}" sudo -u smartshelf python3 -c 'import lgpio; lgpio.gpiochip_open(0)' > "${out}/lgpio-standin.txt" 2>&1 || true
    python3 "${HERE}/compare.py" doctor "${out}/doctor.json" "${out}/lgpio-standin.txt"
    "${AS_PI[@]}" sudo -u smartshelf smartshelf demo --json --fast --port 0 > "${out}/demo.jsonl" 2> "${out}/demo.err" \
        || { cat "${out}/demo.err"; die "smartshelf demo failed"; }
    say "demo: $(wc -l < "${out}/demo.jsonl") decision(s)"
    "${AS_PI[@]}" sudo -u smartshelf smartshelf analyze "${ANALYZE_IMAGES[@]}" > "${out}/analyze.jsonl" 2> "${out}/analyze.err" \
        || { cat "${out}/analyze.err"; die "smartshelf analyze failed"; }
    say "analyze: $(wc -l < "${out}/analyze.jsonl") image(s)"
    "${AS_PI[@]}" /opt/smartshelf/current/venv/bin/python tests/arm64/model_outputs.py > "${out}/model_outputs.json" \
        2> "${out}/model_outputs.err" || { cat "${out}/model_outputs.err"; die "tests/arm64/model_outputs.py failed"; }
    "${IN_ROOT[@]}" /opt/smartshelf/current/venv/bin/python -c "${VERSIONS_PY}" > "${out}/versions.txt"
    say "${out##*/}: $(cat "${out}/versions.txt")"
}

unit_tests() {
    local out="$1"
    "${AS_PI[@]}" /opt/smartshelf/current/venv/bin/python -m pytest -q -p no:cacheprovider "${ROOT_PYTEST[@]}" 2>&1 \
        | tee "${out}/pytest.txt"
}

x86_reference() {
    local out="${RUN_DIR}/x86" py="${REPO}/.venv/bin/python"
    mkdir -p "${out}"
    if [[ ! -x "${REPO}/.venv/bin/smartshelf" ]]; then
        (cd "${REPO}" && SMARTSHELF_MODEL_FILE=/nonexistent ./setup.sh < /dev/null)
    fi
    (
        cd "${REPO}"
        .venv/bin/smartshelf demo --json --fast --port 0 > "${out}/demo.jsonl" 2> "${out}/demo.err"
        .venv/bin/smartshelf analyze "${ANALYZE_IMAGES[@]}" > "${out}/analyze.jsonl" 2> "${out}/analyze.err"
        "${py}" tests/arm64/model_outputs.py > "${out}/model_outputs.json" 2> "${out}/model_outputs.err"
    )
    "${py}" -c "${VERSIONS_PY}" > "${out}/versions.txt"
    say "x86 reference: $(cat "${out}/versions.txt")"
}

run_suite() {
    local suite="$1" out
    out="${RUN_DIR}/${suite}"
    mkdir -p "${out}"
    timed "${suite}: root (build or cache)" build_root "${suite}"
    timed "${suite}: unpack root, stand-ins, mounts" prepare_root "${suite}"
    timed "${suite}: copy checkout" copy_checkout
    timed "${suite}: sudo ./setup.sh (Pi path)" install_like_an_installer "${out}"
    timed "${suite}: sudo ./setup.sh again" second_setup_run "${out}"
    timed "${suite}: check-config, doctor, demo, analyze" shelf_commands "${out}"
    if [[ "${suite}" == bookworm ]]; then
        timed "${suite}: pytest ${ROOT_PYTEST[*]}" unit_tests "${out}"
    fi
    unmount_all
}

main() {
    timed "emulation: binfmt_misc + qemu-user" setup_emulation
    rm -rf "${RUN_DIR}"
    mkdir -p "${RUN_DIR}" "${WORK}"
    timed "x86 reference (demo, analyze, model outputs)" x86_reference
    local suite
    for suite in "${SUITES[@]}"; do
        run_suite "${suite}"
    done
    timed "compare with x86" python3 "${HERE}/compare.py" table "${RUN_DIR}" "${SUITES[@]}"
    print_times | tee "${RUN_DIR}/times.txt"
    say "outputs and table: ${RUN_DIR}"
}

main "$@"
