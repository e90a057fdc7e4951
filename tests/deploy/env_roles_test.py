#!/usr/bin/env python3
"""The roles run from the deployment's environment alone, as the pods do.

Starts `moe scheduler`, two `moe expert`, one `moe attention` and `moe gateway` with no flags but
the role: each gets the MOE_* environment of deploy/base/config/common.env + its role's file,
overriding only what a pod gets from Kubernetes or cannot have on one machine: loopback host and
run-time ports, the peers' addresses (Service names -> 127.0.0.1:port), the model path, the pod
name and IP (MOE_INSTANCE_ID, MOE_ADVERTISE_ADDRESS), MOE_ELASTIC=false (no Kubernetes API here)
and MOE_THREADS=1 (shared cores). Then the gateway must get ready, answer a completion, and
every role must exit 0 on SIGTERM. Every wait is bounded; processes are stopped by pid.
Usage: env_roles_test.py --moe BIN --model DIR --deploy DIR
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

from moe_up import http


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    ports = {r: (free_port(), free_port())
             for r in ("scheduler", "expert-0", "expert-1", "attention", "gateway")}
    procs = []

    def start(role, name, overrides):
        env = dict(base_env)
        env.update(common)
        env.update(env_file(os.path.join(cfg, f"{role}.env")))
        grpc_port, admin_port = ports[name]
        env.update({"MOE_HOST": "127.0.0.1", "MOE_PORT": str(grpc_port),
                    "MOE_MODEL": a.model, "MOE_LOG_LEVEL": "warn"})
        if "MOE_ADMIN_PORT" in env:
            env["MOE_ADMIN_PORT"] = str(admin_port)
        if "MOE_THREADS" in env:
            env["MOE_THREADS"] = "1"
        env.update(overrides)
        p = subprocess.Popen([a.moe, role], env=env, stdout=subprocess.DEVNULL)
        procs.append((name, p))
        return p

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

    sched = f"127.0.0.1:{ports['scheduler'][0]}"
    try:
        start("scheduler", "scheduler", {"MOE_ELASTIC": "false"})
        assert wait_http(f"http://127.0.0.1:{ports['scheduler'][1]}/health"), "scheduler"
        for i in range(2):
            name = f"expert-{i}"
            start("expert", name, {
                "MOE_SCHEDULER": sched, "MOE_INSTANCE_ID": f"moe-expert-{i}",
                "MOE_ADVERTISE_ADDRESS": f"127.0.0.1:{ports[name][0]}"})
        for i in range(2):
            assert wait_http(f"http://127.0.0.1:{ports[f'expert-{i}'][1]}/ready"), "expert ready"
        start("attention", "attention", {"MOE_SCHEDULER": sched})
        assert wait_http(f"http://127.0.0.1:{ports['attention'][1]}/ready"), "attention ready"
        start("gateway", "gateway",
              {"MOE_ATTENTION": f"127.0.0.1:{ports['attention'][0]}"})
        gw = f"http://127.0.0.1:{ports['gateway'][0]}"
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
