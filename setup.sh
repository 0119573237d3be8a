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
#   SMARTSHELF_KIOSK_USER   desktop user that shows the kiosk (default: the auto-login user)
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

is_pi() {
    [[ -r "$MODEL_FILE" ]] && tr -d '\0' < "$MODEL_FILE" | grep -q 'Raspberry Pi'
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
chromium_package() {
    # Raspberry Pi OS ships "chromium" (Trixie, and Bookworm since 2024) or "chromium-browser" (older Bookworm).
    if apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        echo chromium
    elif apt-cache policy chromium-browser 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        echo chromium-browser
    else
        echo chromium
    fi
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

apt_packages() {
    # The distribution's numpy, OpenCV and picamera2 are built together: pip must never replace them.
    # python3-setuptools, python3-wheel: `smartshelf update` builds and installs each release with
    # pip --no-build-isolation (Bookworm's setuptools needs the wheel package for bdist_wheel).
    local pkgs=(python3-venv python3-pip python3-setuptools python3-wheel python3-numpy python3-opencv python3-picamera2 python3-lgpio python3-pil python3-cryptography git "$(chromium_package)")
    local missing=() p
    for p in "${pkgs[@]}"; do
        installed "$p" || missing+=("$p")
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

install_unit() {
    local src="$1" dest="$2" rendered
    rendered="$(mktemp)"
    render_unit "$src" > "$rendered"
    if [[ -f "$dest" ]] && cmp -s "$rendered" "$dest"; then
        rm -f "$rendered"
        return 1
    fi
    if ((DRY)); then
        CHANGED=1
        printf 'would run: install -D -m 0644 %q %q  (with this install'"'"'s paths)\n' "$src" "$dest"
    else
        step install -D -m 0644 "$rendered" "$dest"
    fi
    rm -f "$rendered"
    return 0
}

kiosk_user() {
    if [[ -n "${SMARTSHELF_KIOSK_USER:-}" ]]; then
        echo "$SMARTSHELF_KIOSK_USER"
        return
    fi
    local conf
    for conf in /etc/lightdm/lightdm.conf /etc/lightdm/lightdm.conf.d/*.conf; do
        [[ -f "$conf" ]] || continue
        sed -n 's/^[[:space:]]*autologin-user[[:space:]]*=[[:space:]]*//p' "$conf" | tail -n 1
        return
    done
    if [[ -n "${SUDO_USER:-}" && "${SUDO_USER}" != root ]]; then
        echo "$SUDO_USER"
    fi
}

units() {
    local unit units_changed=0
    for unit in "${SYSTEM_UNITS[@]}" "${RETRAIN_UNITS[@]}"; do
        if install_unit "$REPO/systemd/$unit" "$UNIT_DIR/$unit"; then
            units_changed=1
        fi
    done
    if install_unit "$REPO/systemd/$KIOSK_UNIT" "$USER_UNIT_DIR/$KIOSK_UNIT"; then
        units_changed=1
    fi
    if install_unit "$REPO/systemd/$TIME_WAIT_DROPIN" "$UNIT_DIR/$TIME_WAIT_DROPIN"; then
        units_changed=1
    fi
    if ((units_changed)); then
        step systemctl daemon-reload
        RELEASE_CHANGED=1
    else
        say "systemd units up to date in $UNIT_DIR"
    fi
    # no RTC on a Pi 4: time-sync.target waits for NTP (bounded by the drop-in above)
    for unit in "${SYSTEM_UNITS[@]}" "$RETRAIN_TIMER" "$TIME_WAIT_UNIT"; do
        if ((DRY)) || ! systemctl is-enabled --quiet "$unit" 2>/dev/null; then
            step systemctl enable "$unit"
        fi
    done
    if ((DRY)) || ! systemctl is-active --quiet "$RETRAIN_TIMER" 2>/dev/null; then
        step systemctl start "$RETRAIN_TIMER"
    fi
    local user home wants
    user="$(kiosk_user)"
    if [[ -z "$user" ]] || ! home="$(getent passwd "$user" | cut -d: -f6)" || [[ -z "$home" ]]; then
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
    if ((RELEASE_CHANGED)); then
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
    installed mosquitto || step env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mosquitto
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
    apt_packages
    service_user
    directories
    release
    config_file
    units
    hub_broker
    if ((CHANGED == 0)); then
        say "everything is in place (nothing to do)"
    fi
    summary
}

if ((DRY)); then
    pi_install
elif ((DEV)); then
    dev_venv
elif is_pi; then
    pi_install
else
    say "not a Raspberry Pi ($MODEL_FILE does not name one): setting up the development venv only"
    dev_venv
fi
