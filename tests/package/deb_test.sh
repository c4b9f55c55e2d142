#!/usr/bin/env bash
# The Debian package, end to end on this machine: build it from the build
# tree with CPack, install it with dpkg -i, run what it installed (as the
# ferry user it created, with the configuration it installed), and purge it.
#
#   tests/package/deb_test.sh BUILD_DIR
#
# It changes the machine: it needs root (or passwordless sudo) and runs
# alone (ctest RUN_SERIAL), and it removes what it added: the package, and
# the ferry user and /var/lib/ferry when they were not there before. It
# never touches a ferry package it did not install (a marker file says
# which), keeps the service from starting (policy-rc.d) and bounds its
# ferryd's life (timeout), so a killed test leaves no broker behind.
# Exit 77 (skipped) when it cannot get root, or a ferry package installed by
# someone else is there.
set -euo pipefail
build=$(cd "$1" && pwd)
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "deb_test: needs root or passwordless sudo to run dpkg -i; not run" >&2
    exit 77
  fi
fi

marker=/var/tmp/ferry-deb-test.installed
if dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "install ok installed" && [ ! -e "$marker" ]; then
  echo "deb_test: a ferry package installed by someone else is here; not replacing it; not run" >&2
  exit 77
fi

fail() { echo "deb_test: FAILED: $*" >&2; exit 1; }
work=$(mktemp -d)
had_user=no; getent passwd ferry >/dev/null && had_user=yes
had_dir=no; [ -e /var/lib/ferry ] && had_dir=yes
pid=""
own_policy=no
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  $sudo dpkg --purge ferry >/dev/null 2>&1 || true
  $sudo rm -f "$marker"
  if [ "$own_policy" = yes ]; then $sudo rm -f /usr/sbin/policy-rc.d; fi
  if [ "$had_user" = no ] && getent passwd ferry >/dev/null; then $sudo deluser --system ferry >/dev/null 2>&1 || true; fi
  if [ "$had_dir" = no ]; then $sudo rm -rf /var/lib/ferry; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "deb_test: cpack -G DEB"
(cd "$build" && cpack -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; fail "cpack"; }
deb=$(ls "$work"/pkg/ferry_*.deb)
dpkg-deb -I "$deb" >"$work/info"
dpkg-deb -c "$deb" >"$work/contents"
grep -q "Depends: adduser, .*libzmq5" "$work/info" || fail "no Depends (shlibdeps)"
for f in ./usr/bin/ferryd ./usr/bin/ferry ./etc/ferry/ferryd.toml ./lib/systemd/system/ferryd.service \
         ./usr/lib/cmake/Ferry/FerryConfig.cmake ./usr/lib/libferry_client.a \
         ./usr/include/ferry/client/producer.h ./usr/share/man/man1/ferry.1 \
         ./usr/share/man/man1/ferryd.1 ./usr/share/bash-completion/completions/ferry \
         ./usr/share/zsh/vendor-completions/_ferry; do
  grep -q " $f\$" "$work/contents" || fail "$f is not in the package"
done
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/ferry/ferryd.toml "$work/control/conffiles" || fail "ferryd.toml is not a conffile"

echo "deb_test: dpkg -i $(basename "$deb")"
# Services are not started during the test (invoke-rc.d's policy), so a
# systemd host does not get a broker on /var/lib/ferry from the test build.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod 755 /usr/sbin/policy-rc.d
  own_policy=yes
fi
$sudo touch "$marker"
$sudo dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
[[ "$(/usr/bin/ferryd --version)" == "ferryd "[0-9]* ]] || fail "installed ferryd --version"
[[ "$(/usr/bin/ferry --version)" == "ferry "[0-9]* ]] || fail "installed ferry --version"
echo "deb_test: $(/usr/bin/ferryd --version); $(/usr/bin/ferry --version)"
getent passwd ferry >/dev/null || fail "no ferry user"
[ "$(stat -c '%U:%G %a' /var/lib/ferry)" = "ferry:ferry 750" ] || fail "/var/lib/ferry: $(stat -c '%U:%G %a' /var/lib/ferry)"
[ "$(stat -c '%U:%G %a' /etc/ferry/ferryd.toml)" = "root:ferry 640" ] || fail "ferryd.toml permissions"

# The installed daemon reads /etc/ferry/ferryd.toml without --config.
check=$($sudo setpriv --reuid=ferry --regid=ferry --init-groups /usr/bin/ferryd --check-config 2>&1) || fail "check-config: $check"
[[ "$check" == *"config=/etc/ferry/ferryd.toml data_dir=/var/lib/ferry"* ]] || fail "check-config: $check"

# It serves, as the ferry user, in the packaged data directory (a free port
# instead of the packaged 7400, so a broker already on it does not matter).
$sudo timeout 120 setpriv --reuid=ferry --regid=ferry --init-groups /usr/bin/ferryd --listen 'tcp://127.0.0.1:*' --metrics-listen "" \
  >"$work/ferryd.out" 2>"$work/ferryd.err" &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/ferryd.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(sed -n 's/.*listening on \(tcp:[^ ]*\).*/\1/p' "$work/ferryd.out" | head -1)
[ -n "$endpoint" ] || { cat "$work/ferryd.err"; fail "ferryd did not start"; }
topic="pkg-$$"
/usr/bin/ferry --broker "$endpoint" topics create "$topic" >/dev/null || fail "topics create"
echo "from the package" | /usr/bin/ferry --broker "$endpoint" produce "$topic" 2>/dev/null || fail "produce"
got=$(/usr/bin/ferry --broker "$endpoint" consume "$topic" --from-beginning -e 2>/dev/null)
[ "$got" = "from the package" ] || fail "consumed '$got'"
[ -d "/var/lib/ferry/topics/$topic" ] || fail "not in /var/lib/ferry"
kill -TERM "$pid"; wait "$pid" || fail "ferryd exit $?"; pid=""

if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /lib/systemd/system/ferryd.service >"$work/verify.log" 2>&1 ||
    { cat "$work/verify.log"; fail "systemd-analyze verify"; }
fi
man -w ferry >/dev/null 2>&1 || fail "man ferry"
# find_package(Ferry) finds the installed CMake package.
mkdir -p "$work/user"
printf 'cmake_minimum_required(VERSION 3.25)\nproject(u CXX)\nfind_package(Ferry REQUIRED)\nmessage(STATUS "Ferry ${Ferry_VERSION} at ${Ferry_DIR}")\n' \
  >"$work/user/CMakeLists.txt"
cmake -S "$work/user" -B "$work/user/build" >"$work/user.log" 2>&1 || { cat "$work/user.log"; fail "find_package(Ferry)"; }
grep -q "Ferry .* at /usr/lib/cmake/Ferry" "$work/user.log" || { cat "$work/user.log"; fail "found elsewhere"; }

echo "deb_test: dpkg --purge ferry"
$sudo dpkg --purge ferry >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
[ ! -e /usr/bin/ferryd ] || fail "ferryd left after purge"
[ ! -e /etc/ferry/ferryd.toml ] || fail "ferryd.toml left after purge"
[ -d "/var/lib/ferry/topics/$topic" ] || fail "purge must keep the data directory"
echo "deb_test: ok"
