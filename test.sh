#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs ruff, mypy and pytest.
# Extra arguments go to pytest (./test.sh -k manifests -x). Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")"

DEBIAN_PACKAGES=(docker-registry skopeo podman runc wrk nginx)

install_debian_packages() {
    local missing=() pkg
    for pkg in "${DEBIAN_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    echo "test.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || return 1
    # docker-registry and nginx start system services (:5000, :80) on install; keep them down.
    local created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    local rc=0
    apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    [ "$created_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    return "$rc"
}

if [ "$(id -u)" -eq 0 ]; then
    install_debian_packages || { echo "test.sh: apt-get install failed" >&2; exit 1; }
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv || exit 1
fi
.venv/bin/pip install -q -e '.[test]' || { echo "test.sh: pip install failed" >&2; exit 1; }

status=0
echo "== ruff check" >&2
.venv/bin/ruff check . || status=1
echo "== mypy" >&2
.venv/bin/mypy || status=1
echo "== pytest" >&2
.venv/bin/pytest "$@" || status=1
exit "$status"
