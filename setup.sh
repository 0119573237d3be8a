#!/usr/bin/env bash
# smartshelf installer.
#
#   sudo ./setup.sh            on a Raspberry Pi (Raspberry Pi OS Bookworm or Trixie): install the
#                              appliance: apt packages, service user, release under /opt/smartshelf,
#                              /etc/smartshelf/config.toml, /var/lib/smartshelf, systemd units.
#   ./setup.sh                 anywhere else: only the development venv (.venv, pip install -e .);
#                              never touches the system, even as root.
#   ./setup.sh --dev           the development venv with the test tools (pip install -e '.[test]').
#   ./setup.sh --dry-run       print every step the Raspberry Pi install would take; change nothing.
#   sudo ./setup.sh --hub      the install, plus this machine as a store's hub: Mosquitto (apt), its
#                              config from `smartshelf store hub-config`, [admin] store_hub = true.
#
# Running it again changes nothing that is already in place (it says "nothing to do").
#
# Environment (for tests and unusual layouts):
#   SMARTSHELF_MODEL_FILE   file that names the board (default /proc/device-tree/model)
#   SMARTSHELF_PREFIX       release root (default /opt/smartshelf)
#   SMARTSHELF_ETC          config dir (default /etc/smartshelf)
#   SMARTSHELF_DATA         data dir (default /var/lib/smartshelf)
#   SMARTSHELF_UNIT_DIR     system units (default /etc/systemd/system)
#   SMARTSHELF_USER_UNIT_DIR user units (default /etc/systemd/user)
#   SMARTSHELF_BOOT_FILE    first-boot file (default /boot/firmware/smartshelf.toml)
#   SMARTSHELF_KIOSK_USER   desktop user that shows the kiosk (default: the auto-login user of
#                           lightdm or greetd, raspi-config's console auto-login, then uid 1000)
#   SMARTSHELF_DESKTOP      auto (default: a desktop is installed when labwc, wayfire, lxsession,
#                           lightdm or greetd is), yes or no (Raspberry Pi OS Lite: no browser, no kiosk)
#   SMARTSHELF_ROOTFS       prefix for the files read to find the desktop and its user (tests)
#   SMARTSHELF_SYSTEMD      auto (default: running when /run/systemd/system exists), running, or
#                           offline (a chroot or an image being built: units are installed and
#                           enabled, nothing is reloaded or started; they start at boot)
#   SMARTSHELF_SYSTEM_PYTHON the distribution's python (default /usr/bin/python3)
#   PYTHON                  python that creates the development venv (default python3)
#   SMARTSHELF_VENV         development venv (default .venv next to this file)
#   SMARTSHELF_PIP_FLAGS    extra flags for the development pip install (e.g. --no-deps)
#   SMARTSHELF_UPDATE_FLAGS extra flags for the release install on the Pi (`smartshelf update`,
#                           e.g. "--pip-arg=--no-index --pip-arg=--find-links=/media/usb/wheels")
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODEL_FILE="${SMARTSHELF_MODEL_FILE:-/proc/device-tree/model}"
PREFIX="${SMARTSHELF_PREFIX:-/opt/smartshelf}"
ETC_DIR="${SMARTSHELF_ETC:-/etc/smartshelf}"
DATA_DIR="${SMARTSHELF_DATA:-/var/lib/smartshelf}"
UNIT_DIR="${SMARTSHELF_UNIT_DIR:-/etc/systemd/system}"
USER_UNIT_DIR="${SMARTSHELF_USER_UNIT_DIR:-/etc/systemd/user}"
BOOT_FILE="${SMARTSHELF_BOOT_FILE:-/boot/firmware/smartshelf.toml}"
SYSTEM_PYTHON="${SMARTSHELF_SYSTEM_PYTHON:-/usr/bin/python3}"
BIN_LINK="${SMARTSHELF_BIN_LINK:-/usr/local/bin/smartshelf}"
PYTHON="${PYTHON:-python3}"
VENV="${SMARTSHELF_VENV:-$REPO/.venv}"
read -r -a PIP_FLAGS <<< "${SMARTSHELF_PIP_FLAGS:-}"
read -r -a UPDATE_FLAGS <<< "${SMARTSHELF_UPDATE_FLAGS:-}"
SERVICE_USER=smartshelf
SYSTEM_UNITS=(smartshelf-device.service smartshelf-admin.service smartshelf-firstboot.service)
TIME_WAIT_UNIT=systemd-time-wait-sync.service
TIME_WAIT_DROPIN="$TIME_WAIT_UNIT.d/smartshelf.conf"
# The nightly retrain: the service is started by its timer only (the timer is what is enabled).
RETRAIN_UNITS=(smartshelf-retrain.service smartshelf-retrain.timer)
RETRAIN_TIMER=smartshelf-retrain.timer
KIOSK_UNIT=smartshelf-kiosk.service
DESKTOP="${SMARTSHELF_DESKTOP:-auto}"
SYSTEMD="${SMARTSHELF_SYSTEMD:-auto}"
ROOTFS="${SMARTSHELF_ROOTFS:-}"

DRY=0
DEV=0
HUB=0
CHANGED=0

usage() {
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while (($#)); do
    case "$1" in
        --dev) DEV=1 ;;
        --dry-run) DRY=1 ;;
        --hub) HUB=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "setup.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Run a command that changes the system (or print it with --dry-run).
step() {
    CHANGED=1
    if ((DRY)); then
        printf 'would run:'; printf ' %q' "$@"; printf '\n'
    else
        printf '+'; printf ' %q' "$@"; printf '\n'
        "$@"
    fi
}

# 1 when the board file names a Raspberry Pi, else 0. (The predicates here print their answer:
# a function called inside a condition runs without set -e, shellcheck SC2310.)
is_pi() {
    local model=""
    [[ ! -r "$MODEL_FILE" ]] || model="$(tr -d '\0' < "$MODEL_FILE")"
    if [[ "$model" == *"Raspberry Pi"* ]]; then echo 1; else echo 0; fi
}

# --- development venv ---------------------------------------------------------------------------
# With --dev, the development-only packages (tools/, models/training/) become importable in the venv
# through a .pth file naming the checkout; the editable install itself maps only what ships.
dev_tools_path() {
    ((DEV)) || return 0
    local site pth
    site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    pth="$site/smartshelf-dev-tools.pth"
    if [[ "$(cat "$pth" 2>/dev/null)" != "$REPO" ]]; then
        say "development tools importable from the venv: $pth"
        ((DRY)) || printf '%s\n' "$REPO" > "$pth"
    fi
}

dev_venv() {
    local spec="$REPO" stamp="$VENV/.smartshelf-setup" want want_test
    ((DEV)) && spec="${REPO}[test]"
    want_test="$( { printf '%s\n' "${REPO}[test]" "${PIP_FLAGS[*]}"; cat "$REPO/pyproject.toml"; } | sha256sum | cut -d' ' -f1)"
    want="$( { printf '%s\n' "$spec" "${PIP_FLAGS[*]}"; cat "$REPO/pyproject.toml"; } | sha256sum | cut -d' ' -f1)"
    if [[ -x "$VENV/bin/python" && -f "$stamp" ]] \
        && { [[ "$(cat "$stamp")" == "$want" ]] || [[ "$(cat "$stamp")" == "$want_test" ]]; } \
        && "$VENV/bin/python" -c 'import sys, device; sys.exit(not device.__file__.startswith(sys.argv[1]))' "$REPO/" 2>/dev/null; then
        say "$VENV is up to date with pyproject.toml (nothing to do)"
        dev_tools_path
        return 0
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        step "$PYTHON" -m venv "$VENV"
    fi
    step "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet "${PIP_FLAGS[@]}" -e "$spec"
    printf '%s\n' "$want" > "$stamp"
    dev_tools_path
    say "development venv ready: $VENV (run: $VENV/bin/python -m pytest)"
}

# --- Raspberry Pi appliance ---------------------------------------------------------------------
# 1 when there is a desktop to show the kiosk on. Raspberry Pi OS Lite has none: no browser, no kiosk.
has_desktop() {
    case "$DESKTOP" in
        yes) echo 1; return 0 ;;
        no) echo 0; return 0 ;;
        auto) ;;
        *) die "SMARTSHELF_DESKTOP must be auto, yes or no (not $DESKTOP)" ;;
    esac
    local f
    for f in /usr/bin/labwc /usr/bin/wayfire /usr/bin/lxsession /usr/sbin/lightdm /usr/sbin/greetd; do
        if [[ -x "$ROOTFS$f" ]]; then
            echo 1
            return 0
        fi
    done
    echo 0
}

# 1 when the apt package is installed, else 0.
installed() {
    local status
    status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)"
    if [[ "$status" == "install ok installed" ]]; then echo 1; else echo 0; fi
}

# The browser package for the kiosk: none when one is installed already (Raspberry Pi OS ships
# "chromium", or "chromium-browser" on older Bookworm images), else what the archive offers.
chromium_package() {
    local p policy
    local state
    for p in chromium chromium-browser; do
        state="$(installed "$p")"
        [[ "$state" == 0 ]] || return 0
    done
    for p in chromium chromium-browser; do
        policy="$(apt-cache policy "$p" 2>/dev/null || true)"
        if grep -q 'Candidate: [0-9]' <<< "$policy"; then
            echo "$p"
            return 0
        fi
    done
    echo chromium
}

apt_packages() {
    # The distribution's numpy, OpenCV and picamera2 are built together: pip must never replace them.
    # python3-setuptools, python3-wheel: `smartshelf update` builds and installs each release with
    # pip --no-build-isolation (Bookworm's setuptools needs the wheel package for bdist_wheel).
    local pkgs=(python3-venv python3-pip python3-setuptools python3-wheel python3-numpy python3-opencv
        python3-picamera2 python3-lgpio python3-pil python3-cryptography git)
    local missing=() p browser="" state
    if ((WITH_DESKTOP)); then
        browser="$(chromium_package)"
        [[ -z "$browser" ]] || pkgs+=("$browser")
    else
        say "no desktop (Raspberry Pi OS Lite): no browser and no kiosk screen are installed"
    fi
    for p in "${pkgs[@]}"; do
        state="$(installed "$p")"
        [[ "$state" == 1 ]] || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        say "apt packages present: ${pkgs[*]}"
        return 0
    fi
    step apt-get update
    step env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

service_user() {
    if ! getent group gpio >/dev/null; then
        step groupadd --system gpio
    fi
    if ! getent group video >/dev/null; then
        step groupadd --system video
    fi
    if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
        step useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
            --shell /usr/sbin/nologin --groups video,gpio "$SERVICE_USER"
        return 0
    fi
    local g
    for g in video gpio; do
        if ! id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx "$g"; then
            step usermod --append --groups "$g" "$SERVICE_USER"
        fi
    done
    say "user $SERVICE_USER present (groups: $(id -nG "$SERVICE_USER"))"
}

directories() {
    [[ -d "$DATA_DIR" ]] || step install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0750 "$DATA_DIR"
    [[ -d "$ETC_DIR" ]] || step install -d -m 0755 "$ETC_DIR"
    [[ -d "$PREFIX/releases" ]] || step install -d -m 0755 "$PREFIX" "$PREFIX/releases"
}

# Install this tree as a release (device/update.py does the work; the same code path as updates).
release() {
    local args=(--from "$REPO" --prefix "$PREFIX" --no-restart --no-doctor --system-packages "${UPDATE_FLAGS[@]}")
    ((DRY)) && args+=(--dry-run)
    local before after
    before="$(readlink "$PREFIX/current" 2>/dev/null || true)"
    printf '+ smartshelf update'; printf ' %q' "${args[@]}"; printf '\n'
    PYTHONPATH="$REPO" "$SYSTEM_PYTHON" -m smartshelf.installer.update "${args[@]}"
    after="$(readlink "$PREFIX/current" 2>/dev/null || true)"
    if [[ "$before" != "$after" ]] || ((DRY)); then
        CHANGED=1
        RELEASE_CHANGED=1
    fi
    if [[ "$(readlink "$BIN_LINK" 2>/dev/null || true)" != "$PREFIX/current/venv/bin/smartshelf" ]]; then
        [[ -d "$(dirname "$BIN_LINK")" ]] || step install -d -m 0755 "$(dirname "$BIN_LINK")"
        step ln -sfn "$PREFIX/current/venv/bin/smartshelf" "$BIN_LINK"
    fi
    compile_release
}

# The release tree is read-only to the services: without its .pyc files Python would compile every
# module again at each start. Compile it now, with the release's own Python (nothing when done).
compile_release() {
    local python="$PREFIX/current/venv/bin/python" missing
    if ((DRY)); then
        printf 'would run: %q -m compileall -q %q\n' "$python" "$PREFIX/current/"
        return 0
    fi
    missing="$("$python" - "$PREFIX/current/" <<'PY'
import importlib.util, pathlib, sys
root = pathlib.Path(sys.argv[1])
print(sum(1 for p in root.rglob("*.py") if not pathlib.Path(importlib.util.cache_from_source(p)).exists()))
PY
)"
    if ((missing == 0)); then
        say "release compiled ($PREFIX/current)"
        return 0
    fi
    step "$python" -m compileall -q "$PREFIX/current/"
}

config_file() {
    if [[ -f "$BOOT_FILE" ]]; then
        step "$PREFIX/current/venv/bin/smartshelf" firstboot --boot-file "$BOOT_FILE" --config "$ETC_DIR/config.toml"
    fi
    if [[ -f "$ETC_DIR/config.toml" ]]; then
        say "kept $ETC_DIR/config.toml"
    else
        step install -m 0644 "$REPO/config.example.toml" "$ETC_DIR/config.toml"
        RELEASE_CHANGED=1
    fi
}

# Units with this install's paths (the shipped files use the default paths).
render_unit() {
    sed -e "s#/opt/smartshelf#$PREFIX#g" -e "s#/etc/smartshelf#$ETC_DIR#g" \
        -e "s#/var/lib/smartshelf#$DATA_DIR#g" -e "s#/boot/firmware/smartshelf.toml#$BOOT_FILE#g" "$1"
}

# Install one unit file when it differs (sets UNITS_CHANGED); a failure stops setup.sh.
install_unit() {
    local src="$1" dest="$2" rendered
    rendered="$(mktemp)"
    render_unit "$src" > "$rendered"
    if [[ -f "$dest" ]] && cmp -s "$rendered" "$dest"; then
        rm -f "$rendered"
        return 0
    fi
    UNITS_CHANGED=1
    if ((DRY)); then
        CHANGED=1
        printf 'would run: install -D -m 0644 %q %q  (with this install'"'"'s paths)\n' "$src" "$dest"
    else
        step install -D -m 0644 "$rendered" "$dest"
    fi
    rm -f "$rendered"
}

# 1 when systemd holds an older copy of one of our units (say, after a run interrupted between
# installing the files and daemon-reload), else 0. "systemctl show" fails where systemd is not running.
units_stale() {
    local unit state
    for unit in "${SYSTEM_UNITS[@]}" "${RETRAIN_UNITS[@]}"; do
        state="$(systemctl show --property=NeedDaemonReload --value "$unit" 2>/dev/null || true)"
        if [[ "$state" == yes ]]; then
            echo 1
            return 0
        fi
    done
    echo 0
}

# The desktop user whose session shows the kiosk: lightdm's auto-login (Raspberry Pi OS's
# desktops, X11 or Wayland with labwc/wayfire, set by raspi-config), greetd's initial session,
# raspi-config's console auto-login (getty@tty1), then the first user (uid 1000), then SUDO_USER.
kiosk_user() {
    if [[ -n "${SMARTSHELF_KIOSK_USER:-}" ]]; then
        echo "$SMARTSHELF_KIOSK_USER"
        return
    fi
    local conf user=""
    for conf in "$ROOTFS"/etc/lightdm/lightdm.conf "$ROOTFS"/etc/lightdm/lightdm.conf.d/*.conf; do
        [[ -f "$conf" ]] || continue
        user="$(sed -n 's/^[[:space:]]*autologin-user[[:space:]]*=[[:space:]]*//p' "$conf" | tail -n 1)"
        [[ -z "$user" ]] || break
    done
    if [[ -z "$user" && -f "$ROOTFS/etc/greetd/config.toml" ]]; then
        user="$(sed -n '/^\[initial_session\]/,/^\[/s/^[[:space:]]*user[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' \
            "$ROOTFS/etc/greetd/config.toml" | head -n 1)"
    fi
    if [[ -z "$user" ]]; then
        for conf in "$ROOTFS"/etc/systemd/system/getty@tty1.service.d/*.conf; do
            [[ -f "$conf" ]] || continue
            user="$(sed -n 's/.*--autologin[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' "$conf" | head -n 1)"
            [[ -z "$user" ]] || break
        done
    fi
    if [[ -z "$user" && -f "$ROOTFS/etc/passwd" ]]; then
        user="$(awk -F: '$3 == 1000 { print $1; exit }' "$ROOTFS/etc/passwd")"
    fi
    if [[ -z "$user" && -n "${SUDO_USER:-}" && "${SUDO_USER}" != root ]]; then
        user="$SUDO_USER"
    fi
    echo "$user"
}

# The shelf's screen must never blank: raspi-config (Raspberry Pi OS) switches blanking off for
# the console and the desktop alike (nothing when it is off already).
screen_blanking() {
    if ! command -v raspi-config >/dev/null 2>&1; then
        say "no raspi-config: switch screen blanking off in the desktop's settings"
        return 0
    fi
    local state
    state="$(raspi-config nonint get_blanking 2>/dev/null || true)"
    if [[ "$state" == 1 ]] && ((!DRY)); then
        say "screen blanking is off"
        return 0
    fi
    step raspi-config nonint do_blanking 1
}

units() {
    local unit stale=0
    UNITS_CHANGED=0
    for unit in "${SYSTEM_UNITS[@]}" "${RETRAIN_UNITS[@]}"; do
        install_unit "$REPO/systemd/$unit" "$UNIT_DIR/$unit"
    done
    install_unit "$REPO/systemd/$KIOSK_UNIT" "$USER_UNIT_DIR/$KIOSK_UNIT"
    ((UNITS_CHANGED)) || stale="$(units_stale)"
    if ((stale)); then
        say "systemd still has older copies of the units (an earlier run was interrupted?)"
    fi
    install_unit "$REPO/systemd/$TIME_WAIT_DROPIN" "$UNIT_DIR/$TIME_WAIT_DROPIN"
    if ((UNITS_CHANGED || stale)) && ((!SYSTEMD_RUNNING)); then
        RELEASE_CHANGED=1
    elif ((UNITS_CHANGED || stale)); then
        step systemctl daemon-reload
        RELEASE_CHANGED=1
    else
        say "systemd units up to date in $UNIT_DIR"
    fi
    # no RTC on a Pi 4: time-sync.target waits for NTP (bounded by the drop-in above). The unit comes
    # with systemd-timesyncd on Trixie (Raspberry Pi OS has it; a system with chrony does not).
    local to_enable=("${SYSTEM_UNITS[@]}" "$RETRAIN_TIMER") dir
    for dir in /etc/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
        if [[ -f "$ROOTFS$dir/$TIME_WAIT_UNIT" ]]; then
            to_enable+=("$TIME_WAIT_UNIT")
            break
        fi
    done
    if [[ "${to_enable[-1]}" != "$TIME_WAIT_UNIT" ]]; then
        say "no $TIME_WAIT_UNIT here (systemd-timesyncd not installed): the services will not wait for NTP at boot"
    fi
    for unit in "${to_enable[@]}"; do
        if ((DRY)) || ! systemctl is-enabled --quiet "$unit" 2>/dev/null; then
            step systemctl enable "$unit"
        fi
    done
    if ((SYSTEMD_RUNNING)) && { ((DRY)) || ! systemctl is-active --quiet "$RETRAIN_TIMER" 2>/dev/null; }; then
        step systemctl start "$RETRAIN_TIMER"
    fi
    local user="" home="" wants
    if ((WITH_DESKTOP)); then
        user="$(kiosk_user)"
    fi
    if [[ -n "$user" && -n "$ROOTFS" ]]; then
        home="$(awk -F: -v u="$user" '$1 == u { print $6; exit }' "$ROOTFS/etc/passwd" 2>/dev/null || true)"
    elif [[ -n "$user" ]]; then
        home="$(getent passwd "$user" | cut -d: -f6 || true)"
    fi
    if ((!WITH_DESKTOP)); then
        say "no desktop: the kiosk is not enabled (after installing one, run ./setup.sh again)"
    elif [[ -z "$home" ]]; then
        say "no desktop auto-login user found: for the kiosk screen run as that user: systemctl --user enable $KIOSK_UNIT"
    else
        wants="$home/.config/systemd/user/default.target.wants"
        if [[ "$(readlink "$wants/$KIOSK_UNIT" 2>/dev/null || true)" != "$USER_UNIT_DIR/$KIOSK_UNIT" ]]; then
            local dir group
            group="$(id -gn "$user" 2>/dev/null || echo "$user")"
            for dir in "$home/.config" "$home/.config/systemd" "$home/.config/systemd/user" "$wants"; do
                [[ -d "$dir" ]] || step install -d -o "$user" -g "$group" -m 0755 "$dir"
            done
            step ln -sfn "$USER_UNIT_DIR/$KIOSK_UNIT" "$wants/$KIOSK_UNIT"
        else
            say "kiosk enabled for desktop user $user"
        fi
    fi
    local services=(smartshelf-device.service smartshelf-admin.service)
    if ((!SYSTEMD_RUNNING)); then
        say "systemd is not running here (a chroot or an image being built): the services start at boot"
    elif ((RELEASE_CHANGED)); then
        step systemctl restart "${services[@]}"
    else
        for unit in "${services[@]}"; do
            systemctl is-active --quiet "$unit" 2>/dev/null || step systemctl start "$unit"
        done
    fi
}

summary() {
    local port=8080 ip
    if [[ -f "$ETC_DIR/config.toml" ]]; then
        port="$(PYTHONPATH="$REPO" "$SYSTEM_PYTHON" -c \
            'import sys; from smartshelf.core.config import load_config; print(load_config(sys.argv[1]).admin.port)' \
            "$ETC_DIR/config.toml" 2>/dev/null || echo 8080)"
    fi
    ip="$(hostname -I 2>/dev/null | awk '{print $1}')"
    echo
    say "admin page: http://${ip:-$(hostname)}:$port/"
    say "set the admin password: sudo -u $SERVICE_USER smartshelf admin set-password --config $ETC_DIR/config.toml"
    say "self-check:             sudo -u $SERVICE_USER smartshelf doctor --config $ETC_DIR/config.toml"
    say "logs:                   journalctl -u smartshelf-device -u smartshelf-admin -f"
    if [[ ! -f "$DATA_DIR/factors.npz" ]]; then
        say "note: no factor file $DATA_DIR/factors.npz yet: the shelf suggests the products entered on the"
        say "      admin page from their details (gender, category, price, what sells); the nightly retrain"
        say "      (smartshelf-retrain.timer) learns from the till's sales once there are enough"
    fi
}

# --- store hub (--hub) ---------------------------------------------------------------------------
# Mosquitto from the OS packages, configured by `smartshelf store hub-config` (password file, ACL and
# persistence under the data dir, written by the admin), and the admin switched to hub mode.
hub_broker() {
    ((HUB)) || return 0
    local state
    state="$(installed mosquitto)"
    [[ "$state" == 1 ]] || step env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mosquitto
    local conf=/etc/mosquitto/conf.d/smartshelf.conf
    if [[ ! -f "$conf" ]]; then
        step "$PREFIX/current/venv/bin/smartshelf" store hub-config --data-dir "$DATA_DIR" --out "$conf"
        # The broker reads the password file and ACL the admin writes: group smartshelf, not world.
        step usermod --append --groups "$SERVICE_USER" mosquitto
        step chown -R "$SERVICE_USER:$SERVICE_USER" "$DATA_DIR/bus"
        step chmod 0750 "$DATA_DIR/bus"
    fi
    if ! grep -q '^store_hub *= *true' "$ETC_DIR/config.toml" 2>/dev/null; then
        say "set [admin] store_hub = true in $ETC_DIR/config.toml to show the store page (docs/store-and-chain.md)"
    fi
    step systemctl enable --now mosquitto
    step systemctl reload-or-restart mosquitto
}

pi_install() {
    if ((!DRY)) && ((EUID != 0)); then
        die "installing the appliance needs root: sudo $0"
    fi
    ((DRY)) && say "dry run: the steps a Raspberry Pi install would take (nothing is changed)"
    RELEASE_CHANGED=0
    WITH_DESKTOP="$(has_desktop)"
    case "$SYSTEMD" in
        running) SYSTEMD_RUNNING=1 ;;
        offline) SYSTEMD_RUNNING=0 ;;
        auto) if [[ -d /run/systemd/system ]]; then SYSTEMD_RUNNING=1; else SYSTEMD_RUNNING=0; fi ;;
        *) die "SMARTSHELF_SYSTEMD must be auto, running or offline (not $SYSTEMD)" ;;
    esac
    apt_packages
    service_user
    directories
    release
    config_file
    units
    screen_blanking
    hub_broker
    if ((CHANGED == 0)); then
        say "everything is in place (nothing to do)"
    fi
    summary
}

ON_PI="$(is_pi)"
if ((DRY)); then
    pi_install
elif ((DEV)); then
    dev_venv
elif [[ "$ON_PI" == 1 ]]; then
    pi_install
else
    say "not a Raspberry Pi ($MODEL_FILE does not name one): setting up the development venv only"
    dev_venv
fi
