#!/usr/bin/env python3
"""The roles run from the deployment's environment alone, as the pods do.

Starts `moe scheduler`, two `moe expert`, one `moe attention` and `moe gateway` with no flags but
the role: each gets the MOE_* environment of deploy/base/config/common.env + its role's file,
overriding only what a pod gets from Kubernetes or cannot have on one machine: loopback host and
run-time ports (each role prints the ones it got), the peers' addresses (Service names ->
127.0.0.1:port), the model path, the pod name (MOE_INSTANCE_ID), MOE_ELASTIC=false (no
Kubernetes API here) and MOE_THREADS=1 (shared cores). Then the gateway must get ready, answer a completion, and
every role must exit 0 on SIGTERM. Every wait is bounded; processes are stopped by pid.
Usage: env_roles_test.py --moe BIN --model DIR --deploy DIR
"""
import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from moe_up import http


def env_file(path):
    out = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moe", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--deploy", required=True)
    a = ap.parse_args()
    cfg = os.path.join(a.deploy, "base", "config")
    common = env_file(os.path.join(cfg, "common.env"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MOE_")}
    procs = []

    def start(role, name, overrides):
        """Starts a role on run-time ports; returns its (gRPC or HTTP, admin) host:port."""
        env = dict(base_env)
        env.update(common)
        env.update(env_file(os.path.join(cfg, f"{role}.env")))
        env.update({"MOE_HOST": "127.0.0.1", "MOE_PORT": "0", "MOE_MODEL": a.model,
                    "MOE_LOG_LEVEL": "warn"})
        if "MOE_ADMIN_PORT" in env:
            env["MOE_ADMIN_PORT"] = "0"
        if "MOE_THREADS" in env:
            env["MOE_THREADS"] = "1"
        env.update(overrides)
        p = subprocess.Popen([a.moe, role], env=env, stdout=subprocess.PIPE, text=True)
        procs.append((name, p))
        lines = queue.Queue()

        def forward():  # stdout lines to the queue, on a reader thread
            for line in p.stdout:
                lines.put(line)
        threading.Thread(target=forward, daemon=True).start()
        listen = admin = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (listen is None or
                                               (admin is None and role != "gateway")):
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if p.poll() is not None:
                    sys.exit(f"{name} exited with {p.returncode}")
                continue
            if line.startswith("listening on "):
                listen = line.split()[-1]
            elif line.startswith("admin on "):
                admin = line.split()[-1]
        assert listen is not None, f"{name} did not start"
        return listen, admin

    def wait_http(url, want=200, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if http(url, timeout=5)[0] == want:
                return True
            if any(p.poll() is not None for _, p in procs):
                dead = [(n, p.returncode) for n, p in procs if p.poll() is not None]
                sys.exit(f"a role exited: {dead}")
            time.sleep(0.2)
        return False

    try:
        sched, sched_admin = start("scheduler", "scheduler", {"MOE_ELASTIC": "false"})
        assert wait_http(f"http://{sched_admin}/health"), "scheduler"
        expert_admins = []
        for i in range(2):
            _, admin = start("expert", f"expert-{i}", {"MOE_SCHEDULER": sched,
                                                       "MOE_INSTANCE_ID": f"moe-expert-{i}"})
            expert_admins.append(admin)
        for admin in expert_admins:
            assert wait_http(f"http://{admin}/ready"), "expert ready"
        attention, attention_admin = start("attention", "attention", {"MOE_SCHEDULER": sched})
        assert wait_http(f"http://{attention_admin}/ready"), "attention ready"
        gateway, _ = start("gateway", "gateway", {"MOE_ATTENTION": attention})
        gw = f"http://{gateway}"
        assert wait_http(f"{gw}/ready", timeout=90), "gateway not ready"
        status, text = http(f"{gw}/v1/models")
        assert status == 200, (status, text)
        model = json.loads(text)["data"][0]["id"]
        status, text = http(f"{gw}/v1/completions", {"model": model, "prompt": "Hello",
                                                     "max_tokens": 8, "temperature": 0})
        assert status == 200, (status, text)
        usage = json.loads(text)["usage"]
        assert usage["completion_tokens"] == 8, usage
        print(f"completion through the env-configured roles: {usage}")
    finally:
        codes = {}
        for name, p in reversed(procs):  # gateway first, as Kubernetes would not care
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                codes[name] = p.wait(40)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait(5)
    print(f"exit codes after SIGTERM: {codes}")
    bad = {n: c for n, c in codes.items() if c != 0}
    if bad:
        print(f"FAIL: non-zero exit codes {bad}")
        return 1
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
