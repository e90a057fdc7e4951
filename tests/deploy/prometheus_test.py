#!/usr/bin/env python3
"""A real Prometheus scraping a running `moe up`, then queried over its HTTP API.

Starts `moe up` on the golden tiny-mixtral model (2 expert services, scheduler with
--expert-token-metrics), writes a Prometheus config that scrapes every process (scheduler,
expert and attention admin ports, the gateway) every second with a `component` label like the
cluster config, and loads deploy/monitoring/alerts.rules.yml; starts Debian's `prometheus` on
127.0.0.1 with a temporary data dir; sends traffic; then asks the query API until (bounded):
every target is up, expert token counts per (layer, expert) are there and positive, every layer
has a balancedness in (0, 1], the TTFT histogram has observations, and the alert rules loaded;
then every query of the Grafana dashboard must parse and (except error and elastic-scaling
series) return data, the heatmap one series per (layer, expert).
Every process is stopped by pid. Exit 77 when prometheus is not installed.
Usage: prometheus_test.py --moe BIN --model DIR --deploy DIR
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

from moe_up import MoeUp, http


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(base, expr):
    status, text = http(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}", timeout=10)
    if status != 200:
        return None
    body = json.loads(text)
    return body["data"]["result"] if body.get("status") == "success" else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moe", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--deploy", required=True)
    ap.add_argument("--budget-s", type=float, default=60)
    a = ap.parse_args()
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("prometheus not installed: skipped")
        return 77
    start = time.monotonic()
    layers = json.load(open(os.path.join(a.model, "config.json")))["num_hidden_layers"]
    tmp = tempfile.mkdtemp(prefix="moe-prom-")
    up = None
    prom = None
    try:
        up = MoeUp(a.moe, a.model, ["--experts", "2", "--scheduler-args",
                                    "--expert-token-metrics --rebalance-interval-s 3600"])
        targets = up.metrics_targets()
        jobs = {}
        for component, addr in targets:
            jobs.setdefault(component, []).append(addr)
        shutil.copy(os.path.join(a.deploy, "monitoring", "alerts.rules.yml"), tmp)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.rules.yml"],
            "scrape_configs": [
                {"job_name": f"moe-{c}",
                 "static_configs": [{"targets": addrs, "labels": {"component": c}}],
                 # The cluster config labels series with the pod; here the address stands in.
                 "relabel_configs": [{"source_labels": ["__address__"], "target_label": "pod"}]}
                for c, addrs in jobs.items()],
        }
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            json.dump(config, f)  # JSON is YAML
        deadline = start + a.budget_s
        for attempt in range(3):  # a port picked here may be taken before prometheus binds it
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            prom = subprocess.Popen(
                [prometheus, f"--config.file={tmp}/prometheus.yml",
                 f"--storage.tsdb.path={tmp}/data-{attempt}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(tmp, "prometheus.log"), "w"))
            while time.monotonic() < deadline and prom.poll() is None and \
                    http(f"{base}/-/ready", timeout=2)[0] != 200:
                time.sleep(0.2)
            if prom.poll() is None:
                break
        if prom.poll() is not None:
            sys.exit("prometheus exited: " + open(os.path.join(tmp, "prometheus.log")).read())
        assert http(f"{base}/-/ready")[0] == 200, "prometheus not ready"

        ok = up.traffic(requests=8, max_tokens=12)
        assert ok >= 8, f"only {ok} requests answered 200"

        checks = {
            "every target up": lambda: (
                (r := query(base, "up")) is not None and len(r) == len(targets) and
                all(x["value"][1] == "1" for x in r)),
            "expert token counts per (layer, expert)": lambda: (
                (r := query(base, 'moe_expert_tokens_total{component="scheduler"} > 0'))
                is not None and len({x["metric"]["layer"] for x in r}) == layers),
            "expert services computed tokens": lambda: (
                (r := query(base, 'sum(moe_expert_tokens_total{component="expert"})'))
                and float(r[0]["value"][1]) > 0),
            "balancedness of every layer in (0, 1]": lambda: (
                (r := query(base, "moe_layer_balancedness")) is not None and
                len(r) == layers and all(0 < float(x["value"][1]) <= 1 for x in r)),
            "TTFT histogram has observations": lambda: (
                (r := query(base, "sum(moe_time_to_first_token_seconds_count)"))
                and float(r[0]["value"][1]) >= 8),
            "TTFT p90 is a number": lambda: (
                (r := query(base, "histogram_quantile(0.9, sum by (le) "
                                  "(moe_time_to_first_token_seconds_bucket))"))
                and 0 < float(r[0]["value"][1]) < 60),
            "alert rules loaded and evaluated without error": lambda: (
                (s := http(f"{base}/api/v1/rules")) and s[0] == 200 and
                len(json.loads(s[1])["data"]["groups"]) == 4 and
                all(r["health"] == "ok"
                    for g in json.loads(s[1])["data"]["groups"] for r in g["rules"])),
        }
        passed = set()
        while time.monotonic() < deadline and len(passed) < len(checks):
            for name, fn in checks.items():
                if name not in passed and fn():
                    passed.add(name)
                    print(f"ok   {name} ({time.monotonic() - start:.1f} s)")
            time.sleep(0.5)
        failed = [n for n in checks if n not in passed]
        for n in failed:
            print(f"FAIL {n}")
        if failed:
            for expr in ("up", "moe_expert_tokens_total", "moe_layer_balancedness",
                         "moe_time_to_first_token_seconds_count"):
                print(expr, "=>", json.dumps(query(base, expr))[:600])
            return 1
        # Every query of the Grafana dashboard, as Grafana would send it, must parse, and all
        # but those about events that did not happen (errors, elastic scaling) must have data.
        dash = json.load(open(os.path.join(a.deploy, "monitoring", "grafana",
                                           "moe-dashboard.json")))
        may_be_empty = ('status!~"2.."', 'code!="0"', "moe_desired_expert_instances")
        experts = json.load(open(os.path.join(a.model, "config.json")))
        experts = experts.get("num_local_experts", experts.get("num_experts"))

        def evaluate():
            bad, queries = [], 0
            for panel in dash["panels"]:
                for t in panel.get("targets", []):
                    expr = t["expr"].replace("$__rate_interval", "20s").replace("$layer", ".*")
                    r = query(base, expr)
                    queries += 1
                    if r is None:
                        bad.append(f"{panel['title']}: query failed: {expr}")
                    elif not r and not any(m in expr for m in may_be_empty):
                        bad.append(f"{panel['title']}: no data: {expr}")
                    elif panel["title"].startswith("Expert load heatmap") and \
                            len(r) != layers * experts:
                        bad.append(f"{panel['title']}: {len(r)} series, want {layers * experts}")
            return bad, queries
        # Series born with the traffic need two scrapes before rate() has data: retry (bounded).
        while True:
            bad, queries = evaluate()
            if not bad or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for b in bad:
            print(f"FAIL dashboard {b}")
        if bad:
            return 1
        print(f"ok   all {queries} dashboard queries answer (heatmap: {layers} x {experts})")
        print(f"{len(checks) + 1} passed, 0 failed in {time.monotonic() - start:.1f} s")
        return 0
    finally:
        if prom is not None and prom.poll() is None:
            prom.send_signal(signal.SIGTERM)
            try:
                prom.wait(15)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait(5)
        if up is not None:
            up.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
