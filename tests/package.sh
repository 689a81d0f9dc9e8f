#!/usr/bin/env bash
# Installs the Debian package that .ci/package-deb built with `dpkg -i` and checks it as a vendor would use it:
# the binary names its commit, the man page and completions are where man and the shells look, the unit is
# installed but not enabled, and the installed binary runs the demo from the shipped examples. Removes it again.
# Needs root (dpkg). Prints `package: N passed, N failed`; exits 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

deb=$(ls -t target/debian/keypost_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "package: no .deb in target/debian; run .ci/package-deb first" >&2; exit 1; }
passed=0
failed=0
check() {
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "package: FAILED: $what" >&2
    fi
}

dpkg -i "$deb" >/dev/null || { echo "package: dpkg -i $deb failed" >&2; exit 1; }
trap 'dpkg -r keypost >/dev/null 2>&1' EXIT

commit=$(git log -1 --format=%h)
check "keypost --version names the commit ($commit)" sh -c "/usr/bin/keypost --version | grep -q 'commit $commit'"
check "the man page is installed and is keypost(1)" sh -c 'zcat /usr/share/man/man1/keypost.1.gz | grep -q "^\.TH keypost 1"'
check "the man page lists the subcommands" sh -c 'zcat /usr/share/man/man1/keypost.1.gz | grep -q "keypost\\\\-run"'
check "bash completion is installed" grep -q 'complete .*keypost' /usr/share/bash-completion/completions/keypost
check "zsh completion is installed" grep -q '#compdef keypost' /usr/share/zsh/vendor-completions/_keypost
check "fish completion is installed" grep -q 'complete -c keypost' /usr/share/fish/vendor_completions.d/keypost.fish
check "the unit is installed" test -f /usr/lib/systemd/system/keypost.service -o -f /lib/systemd/system/keypost.service
check "the unit runs the packaged binary" grep -q '^ExecStart=/usr/bin/keypost run' /usr/lib/systemd/system/keypost.service /lib/systemd/system/keypost.service
check "the service is not enabled by the install" sh -c '! test -e /etc/systemd/system/multi-user.target.wants/keypost.service'
check "the licences are shipped" test -f /usr/share/doc/keypost/LICENSE-MIT -a -f /usr/share/doc/keypost/LICENSE-APACHE
check "the example configuration passes check" sh -c '/usr/bin/keypost --config /usr/share/doc/keypost/examples/demo.toml check'

# The installed binary fulfils the shipped demo in a scratch copy (the doc folder is read-only to it).
demo=$(mktemp -d)
cp -r /usr/share/doc/keypost/examples/. "$demo/"
check "the installed binary runs the demo" sh -c "/usr/bin/keypost --config '$demo/demo.toml' run --once 2>&1 | grep -q fulfilled"
check "the demo wrote its replies" sh -c "ls '$demo'/demo-run/outbox/*.eml"
rm -rf "$demo"

check "dpkg -r removes the binary" sh -c 'dpkg -r keypost && ! test -e /usr/bin/keypost'
trap - EXIT
echo "package: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
