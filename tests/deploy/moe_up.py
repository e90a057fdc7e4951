"""Runs `moe up` for the deploy tests: every role on 127.0.0.1 with run-time ports.

MoeUp(binary, model, extra_args) starts it in its own process group, reads the addresses it
prints, and stop() sends SIGTERM to its pid (moe up stops every role), then SIGKILL to the group
after a bound. Every wait is bounded. Only the standard library.
"""
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request


def http(url, body=None, timeout=30):
    """GET (or POST JSON) -> (status, text); status 0 when the connection failed."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


def metric_names(text):
    """Sample names of a Prometheus text exposition (e.g. foo_bucket, foo_sum, foo)."""
    names = set()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
        if m:
            names.add(m.group(1))
    return names


class MoeUp:
    def __init__(self, binary, model, extra_args=(), startup_timeout=180):
        self.proc = subprocess.Popen(
            [binary, "up", "--model", model, "--host", "127.0.0.1", "--port", "0",
             "--log-level", "warn", *extra_args],
            stdout=subprocess.PIPE, stderr=None, text=True, start_new_session=True)
        self.addrs = {}
        deadline = time.monotonic() + startup_timeout
        keys = {"scheduler admin": "scheduler_admin", "scheduler": "scheduler",
                "expert services": "experts", "expert admin": "expert_admin",
                "attention workers": "attention", "attention admin": "attention_admin"}
        # moe up prints its table, then "listening on GATEWAY" once everything is ready. A
        # reader thread forwards its stdout lines (None at the end).
        self.lines = queue.Queue()

        def forward():
            for line in self.proc.stdout:
                self.lines.put(line)
            self.lines.put(None)
        threading.Thread(target=forward, daemon=True).start()
        while time.monotonic() < deadline:
            line = self._readline(deadline)
            if line is None:
                break
            line = line.strip()
            if line.startswith("listening on "):
                self.addrs["gateway"] = line[len("listening on "):]
                return
            for prefix, key in keys.items():
                if line.startswith(prefix + " "):
                    self.addrs[key] = line[len(prefix) + 1:].split()
                    break
        self.stop()
        raise RuntimeError("moe up did not start")

    def _readline(self, deadline):
        try:
            return self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def gateway(self):
        return "http://" + self.addrs["gateway"]

    def metrics_targets(self):
        """(component, host:port) of every /metrics endpoint."""
        out = [("scheduler", a) for a in self.addrs.get("scheduler_admin", [])]
        out += [("expert", a) for a in self.addrs.get("expert_admin", [])]
        out += [("attention", a) for a in self.addrs.get("attention_admin", [])]
        out.append(("gateway", self.addrs["gateway"]))
        return out

    def traffic(self, requests=6, max_tokens=16):
        """Sends completions (and one chat completion); returns how many answered 200."""
        status, text = http(self.gateway() + "/v1/models")
        model = json.loads(text)["data"][0]["id"] if status == 200 else "model"
        ok = 0
        for i in range(requests):
            status, _ = http(self.gateway() + "/v1/completions",
                             {"model": model, "prompt": f"Request {i}: the experts",
                              "max_tokens": max_tokens, "temperature": 0})
            ok += status == 200
        status, _ = http(self.gateway() + "/v1/completions",
                         {"model": model, "prompt": "streamed", "max_tokens": max_tokens,
                          "stream": True})
        ok += status == 200
        return ok

    def stop(self, timeout=30):
        """SIGTERM to moe up (it stops every role); SIGKILL to its group after `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode
