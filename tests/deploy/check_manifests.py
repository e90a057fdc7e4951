#!/usr/bin/env python3
"""Checks what the schemas cannot in the rendered kustomize output of deploy/ (one overlay).

  check_manifests.py --variant base|cpu|gpu --rendered FILE.yaml [--moe BIN]

- every container: the moe image, startup/readiness/liveness probes on ports it declares,
  cpu and memory requests and limits; every pod non-root;
- every workload but the one-replica scheduler has a PodDisruptionBudget; every Service selects a workload and targets a port
  its pods declare;
- the scheduler's ServiceAccount may get/patch the expert StatefulSet's scale subresource and
  list pods; MOE_K8S_STATEFULSET names that StatefulSet, which leaves `replicas` to the scheduler;
- the roles find each other: MOE_SCHEDULER and MOE_ATTENTION name the Services and ports;
- terminationGracePeriodSeconds covers each role's drain (MOE_DRAIN_TIMEOUT_S + 5 s to finish);
- with --moe: every MOE_* key of a role's ConfigMaps is a flag of that role (`moe ROLE --help`);
- gpu: expert services ask for nvidia.com/gpu and run MOE_BACKEND=cuda on the cuda image; cpu and
  base: no GPU anywhere.
"""
import argparse
import re
import subprocess
import sys

import yaml

errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)
    return cond


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", required=True, choices=["base", "cpu", "gpu"])
    ap.add_argument("--rendered", required=True)
    ap.add_argument("--moe")
    a = ap.parse_args()
    docs = [d for d in yaml.safe_load_all(open(a.rendered)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    configmaps = by_kind.get("ConfigMap", {})
    workloads = {**by_kind.get("Deployment", {}), **by_kind.get("StatefulSet", {})}
    check(set(workloads) == {"moe-scheduler", "moe-expert", "moe-attention", "moe-gateway"},
          f"workloads: {sorted(workloads)}")

    def env_of(w):
        """The MOE_* environment of a workload's first container: ConfigMaps, then env."""
        c = w["spec"]["template"]["spec"]["containers"][0]
        env = {}
        for src in c.get("envFrom", []):
            name = src["configMapRef"]["name"]
            if check(name in configmaps, f"{w['metadata']['name']}: no ConfigMap {name}"):
                env.update(configmaps[name].get("data", {}))
        for e in c.get("env", []):
            env[e["name"]] = e.get("value", "<from field>")
        return env

    role_of = {"moe-scheduler": "scheduler", "moe-expert": "expert",
               "moe-attention": "attention", "moe-gateway": "gateway"}
    envs = {n: env_of(w) for n, w in workloads.items()}
    gpu_seen = False
    for name, w in workloads.items():
        pod = w["spec"]["template"]["spec"]
        labels = w["spec"]["template"]["metadata"]["labels"]
        check(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{name}: not non-root")
        # The model folder: a claim that exists, or a hostPath; mounted read-only at /models.
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        models = vols.get("models", {})
        claim = models.get("persistentVolumeClaim", {}).get("claimName")
        check((claim is not None and claim in by_kind.get("PersistentVolumeClaim", {})) or
              "hostPath" in models, f"{name}: volume models is neither an existing claim "
              f"nor a hostPath: {models}")
        mounts = [m for c in pod["containers"] for m in c.get("volumeMounts", [])
                  if m["name"] == "models"]
        check(len(mounts) == 1 and mounts[0]["mountPath"] == "/models" and
              mounts[0].get("readOnly") is True, f"{name}: models not mounted read-only")
        for c in pod["containers"]:
            where = f"{name}/{c['name']}"
            image = c["image"]
            check(image.split(":")[0].split("/")[-1] == "moe", f"{where}: image {image}")
            check(c.get("args", [None])[0] == role_of[name], f"{where}: args {c.get('args')}")
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                p = c.get(probe)
                if not check(p is not None, f"{where}: no {probe}"):
                    continue
                port = (p.get("grpc") or p.get("httpGet") or p.get("tcpSocket") or {}).get("port")
                check(port in ports or port in ports.values(),
                      f"{where}: {probe} port {port} is not a container port")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    check(r in res.get(kind, {}), f"{where}: no {kind}.{r}")
            if "nvidia.com/gpu" in res.get("limits", {}):
                gpu_seen = True
                check(name == "moe-expert", f"{where}: asks for a GPU")
            if a.variant == "gpu":
                check(image.endswith(":cuda"), f"{where}: image {image} is not the cuda one")
        pdbs = [p for p in by_kind.get("PodDisruptionBudget", {}).values()
                if p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        # The scheduler is one replica (Recreate): a budget would either block node drains
        # forever or allow everything; its restart is survived (instances re-register).
        want = 0 if name == "moe-scheduler" else 1
        check(len(pdbs) == want, f"{name}: {len(pdbs)} PodDisruptionBudgets, want {want}")
    if a.variant == "gpu":
        check(gpu_seen, "gpu: no container asks for nvidia.com/gpu")
        check(envs["moe-expert"].get("MOE_BACKEND") == "cuda", "gpu: expert MOE_BACKEND != cuda")
    else:
        check(not gpu_seen, f"{a.variant}: a container asks for nvidia.com/gpu")
        check(envs["moe-expert"].get("MOE_BACKEND") == "cpu", "expert MOE_BACKEND != cpu")

    # Services: selectors and target ports.
    services = by_kind.get("Service", {})
    for sname, s in services.items():
        sel = s["spec"]["selector"]
        targets = [w for w in workloads.values()
                   if sel.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        if not check(len(targets) == 1, f"Service {sname}: selects {len(targets)} workloads"):
            continue
        cports = {p["name"]: p["containerPort"]
                  for c in targets[0]["spec"]["template"]["spec"]["containers"]
                  for p in c.get("ports", [])}
        for p in s["spec"]["ports"]:
            t = p.get("targetPort", p["port"])
            check(t in cports or t in cports.values(), f"Service {sname}: targetPort {t}")

    def service_addr(value, what):
        host, _, port = value.rpartition(":")
        s = services.get(host)
        if check(s is not None, f"{what}={value}: no Service {host}"):
            check(int(port) in [p["port"] for p in s["spec"]["ports"]],
                  f"{what}={value}: Service {host} has no port {port}")
        return s

    sched = envs["moe-scheduler"]
    for n in ("moe-expert", "moe-attention"):
        service_addr(envs[n].get("MOE_SCHEDULER", ""), f"{n} MOE_SCHEDULER")
    service_addr(envs["moe-gateway"].get("MOE_ATTENTION", ""), "gateway MOE_ATTENTION")
    check(sched.get("MOE_PORT") == "50071" and envs["moe-expert"].get("MOE_PORT") == "50061" and
          envs["moe-attention"].get("MOE_PORT") == "50051", "role ports")
    check(envs["moe-expert"].get("MOE_INSTANCE_ID") == "$(POD_NAME)",
          "experts must register under their pod name (KubernetesProvider.NextToRemove)")
    check(envs["moe-expert"].get("MOE_ADVERTISE_ADDRESS", "").startswith("$(POD_IP)"),
          "experts must advertise their pod IP")

    # Elastic scaling through the Kubernetes API.
    sts = by_kind.get("StatefulSet", {})
    if sched.get("MOE_ELASTIC") == "true":
        check(sched.get("MOE_PROVIDER") == "kubernetes", "MOE_PROVIDER != kubernetes")
        target = sched.get("MOE_K8S_STATEFULSET")
        if check(target in sts, f"MOE_K8S_STATEFULSET={target}: no such StatefulSet"):
            check("replicas" not in sts[target]["spec"],
                  f"StatefulSet {target}: replicas belongs to the scheduler")
        sa = workloads["moe-scheduler"]["spec"]["template"]["spec"].get("serviceAccountName")
        granted = set()
        for rb in by_kind.get("RoleBinding", {}).values():
            if not any(s["kind"] == "ServiceAccount" and s["name"] == sa for s in rb["subjects"]):
                continue
            role = by_kind.get("Role", {}).get(rb["roleRef"]["name"])
            for rule in (role or {}).get("rules", []):
                names = rule.get("resourceNames")
                for res in rule["resources"]:
                    for v in rule["verbs"]:
                        if names is None or target in names or res == "pods":
                            granted.add((res, v))
        for need in [("statefulsets/scale", "get"), ("statefulsets/scale", "patch"),
                     ("pods", "list")]:
            check(need in granted, f"scheduler ServiceAccount {sa} lacks {need}")

    # Grace periods cover the drains.
    for n in ("moe-attention", "moe-expert"):
        grace = workloads[n]["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        drain = int(envs[n].get("MOE_DRAIN_TIMEOUT_S", "0"))
        check(grace >= drain + 5 + 5, f"{n}: grace {grace} s < drain {drain} s + 10 s")

    # Every MOE_* key is a flag of its role.
    if a.moe:
        for n, env in envs.items():
            role = role_of[n]
            out = subprocess.run([a.moe, role, "--help"], capture_output=True, text=True,
                                 timeout=30)
            known = set(re.findall(r"\[env (MOE_[A-Z0-9_]+)\]", out.stdout + out.stderr))
            check(len(known) > 3, f"moe {role} --help lists no env twins")
            for k in env:
                if k.startswith("MOE_"):
                    check(k in known, f"{n}: {k} is not a flag of `moe {role}`")

    for e in errors:
        print("FAIL", e)
    print(f"{a.variant}: {len(errors)} problems in {len(docs)} objects")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
