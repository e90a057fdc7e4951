#!/usr/bin/env python3
"""Every moe_* metric the Grafana dashboard and the alert rules query is one the services export.

Runs `moe up` (scheduler with --expert-token-metrics), sends traffic, reads /metrics of every
role (scheduler, expert and attention admin ports, the gateway's port), and a short
`moe scheduler --elastic --provider local` for the elastic scaler's metrics; then checks each name
the dashboard's and the rules' expressions mention. `up` is Prometheus's own series.
Usage: metric_names_test.py --moe BIN --model DIR --deploy DIR
"""
import argparse
import json
import re
import signal
import subprocess
import sys
import time

import yaml

from moe_up import MoeUp, http, metric_names

NAME = re.compile(r"\bmoe_[a-z0-9_]+\b")


def queried_names(deploy):
    """{name: [where it is used]} from the dashboard and the rule file."""
    used = {}
    dash = json.load(open(f"{deploy}/monitoring/grafana/moe-dashboard.json"))

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                for n in NAME.findall(t.get("expr", "")):
                    used.setdefault(n, []).append(f"dashboard: {p['title']}")
            walk(p.get("panels", []))
    walk(dash["panels"])
    for v in dash.get("templating", {}).get("list", []):
        for n in NAME.findall(json.dumps(v.get("query", ""))):
            used.setdefault(n, []).append(f"dashboard variable {v['name']}")
    rules = yaml.safe_load(open(f"{deploy}/monitoring/alerts.rules.yml"))
    for g in rules["groups"]:
        for r in g["rules"]:
            for n in NAME.findall(r["expr"]):
                used.setdefault(n, []).append(f"alert {r.get('alert', r.get('record'))}")
    return used


def elastic_scheduler_names(binary, model):
    """/metrics names of a `moe scheduler --elastic --provider local` (it starts one expert)."""
    p = subprocess.Popen(
        [binary, "scheduler", "--model", model, "--host", "127.0.0.1", "--port", "0",
         "--admin-port", "0", "--elastic", "--provider", "local", "--min-experts", "1",
         "--max-experts", "1", "--log-level", "warn"],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        admin = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and admin is None:
            line = p.stdout.readline()
            if not line:
                break
            if line.startswith("admin on "):
                admin = line.split()[-1]
        if admin is None:
            raise RuntimeError("moe scheduler --elastic did not start")
        status, text = http(f"http://{admin}/metrics")
        assert status == 200, (status, text)
        return metric_names(text)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moe", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--deploy", required=True)
    a = ap.parse_args()

    used = queried_names(a.deploy)
    assert len(used) >= 15, f"suspiciously few metric names found: {sorted(used)}"
    exported = {}
    up = MoeUp(a.moe, a.model, ["--experts", "2",
                                "--scheduler-args", "--expert-token-metrics"])
    try:
        ok = up.traffic()
        assert ok >= 6, f"only {ok} requests answered 200"
        # Load reports reach the scheduler about every second: read every role's /metrics
        # until the queried names are there (bounded).
        deadline = time.monotonic() + 20
        while True:
            exported = {}
            for component, addr in up.metrics_targets():
                status, text = http(f"http://{addr}/metrics")
                assert status == 200, (component, addr, status)
                for n in metric_names(text):
                    exported.setdefault(n, set()).add(component)
            elastic_only = {"moe_desired_expert_instances", "moe_scale_events_total"}  # below
            if all(n in exported for n in used if n not in elastic_only):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        code = up.stop()
    for n in elastic_scheduler_names(a.moe, a.model):
        exported.setdefault(n, set()).add("scheduler --elastic")

    missing = {n: where for n, where in used.items() if n not in exported}
    for n in sorted(used):
        print(f"{'ok ' if n in exported else 'MISSING'} {n}: "
              f"{', '.join(sorted(exported.get(n, [])))}")
    if missing:
        print("\nqueried but not exported:")
        for n, where in sorted(missing.items()):
            print(f"  {n} ({'; '.join(sorted(set(where)))})")
        return 1
    print(f"all {len(used)} metric names are exported; moe up exited {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
