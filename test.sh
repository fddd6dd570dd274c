#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs ruff (lint and format
# check), mypy and pytest.
# Extra arguments go to pytest (./test.sh -k manifests -x). Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")"

DEBIAN_PACKAGES=(docker-registry skopeo podman runc wrk nginx)

install_debian_packages() {
    local missing=() pkg
    for pkg in "$@"; do
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

# The coordinator's tests run on SQLite and on PostgreSQL at 127.0.0.1:5432 (user postgres,
# trust auth on loopback). Machines that have no PostgreSQL running get Debian's.
postgres_listening() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

ensure_postgres() {
    postgres_listening && return 0
    if ! dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed"; then
        install_debian_packages postgresql || return 1
    fi
    local version hba
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! grep -q "portmesh tests" "$hba"; then
        sed -i '1i host all postgres 127.0.0.1/32 trust  # portmesh tests' "$hba"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || return 1
    for _ in $(seq 30); do postgres_listening && return 0; sleep 1; done
    return 1
}

if [ "$(id -u)" -eq 0 ]; then
    install_debian_packages "${DEBIAN_PACKAGES[@]}" || { echo "test.sh: apt-get install failed" >&2; exit 1; }
    ensure_postgres || { echo "test.sh: PostgreSQL could not be started" >&2; exit 1; }
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv || exit 1
fi
.venv/bin/pip install -q -e '.[test]' || { echo "test.sh: pip install failed" >&2; exit 1; }

status=0
echo "== ruff check" >&2
.venv/bin/ruff check . || status=1
echo "== ruff format --check" >&2
.venv/bin/ruff format --check . || status=1
echo "== mypy" >&2
.venv/bin/mypy || status=1
echo "== pytest" >&2
.venv/bin/pytest "$@" || status=1
exit "$status"
