#!/usr/bin/env bash
# Newcomer end to end (`make e2e`): what someone who just found the project does.
#
# A fresh `git clone` of the committed HEAD into a temporary directory, no prior state
# (no .venv, no data beyond the embedded raw files, no conf/local), then ONLY the README's
# commands: `make run` (creates .venv, installs, runs full_cycle with the default budgets),
# then the registry / paper-trading commands. tests/e2e/check_artifacts.py then checks
# every full_cycle artifact named in the catalog, and that the HTML report renders in
# headless Chromium with no broken images; the screenshot is copied back to this
# checkout's data/08_reporting/ as a CI artifact.
#
# Env: E2E_WORKDIR (default: a new mktemp dir), E2E_KEEP=1 keeps the clone.
set -euo pipefail
SRC="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${E2E_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/rsc-newcomer.XXXXXX")}"
CLONE="$WORK/reinforce-strategy-creator"
export KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1
cleanup() { [[ "${E2E_KEEP:-0}" == 1 ]] || rm -rf "$WORK"; }
trap cleanup EXIT
stamp() { date +%s; }
say() { printf '\n=== [e2e] %s\n' "$*"; }

if [[ ! -x /usr/bin/chromium ]]; then
  say "installing chromium (Debian package) for the report screenshot"
  if [[ $(id -u) -eq 0 ]]; then apt-get install -y chromium >/dev/null || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
  else sudo apt-get install -y chromium >/dev/null; fi
fi

say "fresh clone of HEAD ($(git -C "$SRC" rev-parse --short HEAD)) into $CLONE"
git clone --quiet "$SRC" "$CLONE"
cd "$CLONE"
test ! -e .venv && test ! -e data/03_primary/primary_prices.parquet

t0=$(stamp)
say "make run   (README: fresh machine -> .venv, install, kedro run --pipelines full_cycle)"
make run
t1=$(stamp)

say "README: model registry and paper trading"
# shellcheck disable=SC1091
source .venv/bin/activate
kedro models list
# --json is one JSON document on stdout (logs go to stderr)
production=$(kedro models list --status production --json | python -c 'import json,sys; print(len(json.load(sys.stdin)))')
# whatever the verdict, the shadow account traded the champion on the held-back bars
kedro paper status --json | python -c '
import json, sys
status = json.load(sys.stdin)
assert status["shadow"]["exists"] and status["shadow"]["bars_processed"] > 0, status["shadow"]
print("shadow account:", status["shadow"]["model"], "equity", status["shadow"]["equity"])'

if [[ "$production" == 0 ]]; then
  # The gate did not pass, so auto_promote promoted nothing. The README's override, recorded
  # in the registry: promote the evaluated champion by hand, then trade the paper bars.
  entry=$(kedro models list --json | python -c '
import json, sys
entries = json.load(sys.stdin)
champion = json.load(open("data/07_model_output/champion.json"))
print(next(e["entry_id"] for e in entries if e["agent"] == champion["agent"]
           and e["seed"] == champion["seed"] and e["version"] == champion["policy_version"]))')
  say "no production model (verdict failed): kedro models promote $entry --force --reason ..."
  kedro models promote "$entry" --force --reason "e2e newcomer run"
  kedro run --pipelines deployment
fi
kedro paper status
account() { find data/07_model_output/paper_account data/07_model_output/shadow_account -type f ! -name '*.lock' -exec sha256sum {} + | sort; }
before=$(account)
kedro run --pipelines deployment      # no new bars: the account must not change
[[ "$before" == "$(account)" ]] || { echo "[e2e] re-running deployment with no new bars changed a paper account" >&2; exit 1; }
t2=$(stamp)

say "checking artifacts and the HTML report"
python "$SRC/tests/e2e/check_artifacts.py" "$CLONE" --screenshot "$CLONE/data/08_reporting/report_screenshot.png"
mkdir -p "$SRC/data/08_reporting"
cp "$CLONE/data/08_reporting/report_screenshot.png" "$SRC/data/08_reporting/report_screenshot.png"
t3=$(stamp)

say "wall times: make run (install + full_cycle) $((t1 - t0)) s, registry/paper commands $((t2 - t1)) s, checks $((t3 - t2)) s"
say "OK — screenshot: $SRC/data/08_reporting/report_screenshot.png"
