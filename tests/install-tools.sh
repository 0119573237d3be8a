#!/usr/bin/env bash
# Install the tools the test suite uses, when running as root with apt and they are missing:
#   chromium (browser tests, /usr/bin/chromium), shellcheck (setup.sh and scripts),
#   systemd (systemd-analyze verify/security of the units), strace (the bench's storage day counts
#   every fsync, SQLite's included, with strace -e trace=fsync,fdatasync); and (block below, issue 19)
#   mosquitto (store bus tests) and a Java runtime (Spark tests);
#   mmdebstrap and arch-test (the arm64 stage, tests/arm64/run.sh: it builds arm64 Debian roots and
#   fetches its own qemu-user >= 10 from Trixie into its cache, so no qemu package is installed here).
# Elsewhere it only reports what is missing; the tests that need a tool skip without it.
set -euo pipefail

# --- store bus and chain (issue 19): Mosquitto for the bus tests, a Java runtime for Spark --------
# Separate from the block above so that other additions merge cleanly. Same rule: install only when
# root with apt-get and missing; otherwise report, and the tests that need them skip.
chain_need=()
command -v mosquitto >/dev/null 2>&1 || [[ -x /usr/sbin/mosquitto ]] || chain_need+=(mosquitto)
command -v java >/dev/null 2>&1 || chain_need+=(default-jre-headless)
if ((${#chain_need[@]} == 0)); then
    echo "install-tools: mosquitto and java present"
elif [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: missing ${chain_need[*]} (not root or no apt-get); the bus and Spark tests will skip" >&2
else
    echo "install-tools: apt-get install ${chain_need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${chain_need[@]}" >/dev/null
    # The test suite starts its own brokers on free loopback ports; the packaged service is not needed.
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
        systemctl disable --now mosquitto >/dev/null 2>&1 || true
    fi
fi
# --- end store bus and chain ----------------------------------------------------------------------


need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v arch-test >/dev/null 2>&1 || need+=(arch-test)

if ((${#need[@]} == 0)); then
    echo "install-tools: chromium, shellcheck, systemd-analyze, strace, mmdebstrap and arch-test present"
    exit 0
fi
if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: missing ${need[*]} (not root or no apt-get); the tests that need them will skip" >&2
    exit 0
fi
echo "install-tools: apt-get install ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
