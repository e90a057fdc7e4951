#!/usr/bin/env bash
# promtool on deploy/monitoring: `check rules` on the alert rules, `test rules` on
# tests/deploy/alerts_test.yml, `check config` on the scrape config, and the Operator's
# PrometheusRule holds exactly the rule file's groups. Exit 77 when promtool is absent.
#
# Debian's Prometheus is built without Kubernetes service discovery: when its promtool rejects
# kubernetes_sd_configs as an unknown field, the config is checked once more with that block
# replaced by static_configs (every other field, relabelling regex and the rule files are still
# checked), and the script says so. An upstream promtool checks the file as it is.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mon="$repo/deploy/monitoring"
command -v promtool >/dev/null || { echo "promtool not installed: skipped"; exit 77; }

promtool check rules "$mon/alerts.rules.yml"
promtool test rules "$repo/tests/deploy/alerts_test.yml"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp "$mon/prometheus.yml" "$mon/alerts.rules.yml" "$tmp/"
if ! promtool check config "$tmp/prometheus.yml" >"$tmp/out" 2>&1; then
  cat "$tmp/out"
  if grep -q "field kubernetes_sd_configs not found" "$tmp/out"; then
    echo "promtool: this Prometheus build has no Kubernetes discovery; checking the rest"
    python3 - "$tmp/prometheus.yml" <<'PY'
import sys, yaml
p = sys.argv[1]
c = yaml.safe_load(open(p))
n = 0
for job in c["scrape_configs"]:
    if job.pop("kubernetes_sd_configs", None) is not None:
        job["static_configs"] = [{"targets": ["127.0.0.1:9100"]}]
        n += 1
assert n > 0
yaml.safe_dump(c, open(p, "w"))
PY
    promtool check config "$tmp/prometheus.yml"
  else
    exit 1
  fi
else
  cat "$tmp/out"
fi

python3 - "$mon/alerts.rules.yml" "$mon/operator/prometheus-rule.yaml" <<'PY'
import sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
crd = yaml.safe_load(open(sys.argv[2]))
assert crd["kind"] == "PrometheusRule", crd["kind"]
if crd["spec"]["groups"] != rules["groups"]:
    sys.exit("operator/prometheus-rule.yaml differs from alerts.rules.yml: keep them equal")
print(f"PrometheusRule: the same {sum(len(g['rules']) for g in rules['groups'])} rules")
PY
