#!/bin/sh
# Browser test of the web UI: installs what is missing (Debian's Chromium, the pinned
# playwright-core and axe-core), builds cairnd (debug) and runs the test with node's test runner.
# Screenshots go to build/ui-results/ (UI_RESULTS overrides); cairnd's log is kept there too.
# With CAIRN_URL set (a booted lab node: qemu-test/tests/ui.rs) it runs CAIRN_LAB_TEST
# (default lab.test.mjs, the setup wizard; lab-storage.test.mjs is the Disks & pools page)
# against that node instead, and builds nothing.
# Usage: services/api/ui-tests/run.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$chromium" ]; then
    echo "ui-tests: installing Debian's chromium" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "ui-tests: installing Debian's nodejs and npm" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q nodejs npm
fi

cd "$here"
# Every pinned dependency (playwright-core, axe-core) installed at its version, or `npm ci`.
stale=$(node -e "
const deps = require('./package.json').dependencies;
const have = (n) => { try { return require('./node_modules/' + n + '/package.json').version; } catch { return ''; } };
console.log(Object.keys(deps).filter((n) => have(n) !== deps[n]).join(' '));
")
if [ -n "$stale" ]; then
    echo "ui-tests: installing $stale" >&2
    npm ci --no-audit --no-fund
fi

if [ -n "${CAIRN_URL:-}" ]; then
    exec node --test "${CAIRN_LAB_TEST:-lab.test.mjs}"
fi

if [ -z "${CAIRND:-}" ]; then
    (cd "$repo" && cargo build -p cairnd)
fi

exec node --test setup.test.mjs shares.test.mjs network.test.mjs storage.test.mjs vms.test.mjs images.test.mjs cluster.test.mjs starting.test.mjs
