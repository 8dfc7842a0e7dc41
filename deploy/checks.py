#!/usr/bin/env python3
"""Checks of Keyport's deployment recipes, run by deploy/test.sh.

Each subcommand reads a recipe (or what Helm rendered from it), asserts what
the recipe promises, prints one line per check that passed, and exits 1 with
every failure listed when one did not:

  helm-sqlite FILE     rendered chart, database.mode=sqlite
  helm-postgres FILE   rendered chart, database.mode=postgres (secrets, metrics, migrations on)
  containerfile FILE   deploy/container/Containerfile, parsed with dockerfile-parse
  runtime-only FILE    write the Containerfile with a prebuilt-binary builder stage to --out
  image FILE           `podman image inspect` of the built image
  systemd FILE         deploy/systemd/keyport.service
  dashboard FILE       deploy/grafana/keyport-dashboard.json; writes a promtool rules file
                       of its expressions with --rules OUT
  metrics-types FILE   a /metrics scrape of a real keyport: types of the names we chart
  toml FILE            rendered chart: write the ConfigMap's keyport.toml to --out
  sign-up-in URL       SignUp and SignIn over gRPC-web against a running keyport
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tomllib
from pathlib import Path

# Secret values that deploy/test.sh passes to the postgres render; none may
# appear anywhere but in a Secret.
SECRET_MARKERS = ("S3cretDbPassw0rd", "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGU=")

# The metrics Keyport exports (the lead's list), with their Prometheus types.
# The dashboard may use these names only; histograms also by _bucket/_sum/_count.
METRICS = {
    "keyport_rpc_requests_total": "counter",
    "keyport_rpc_duration_seconds": "histogram",
    "keyport_rpc_errors_total": "counter",
    "keyport_hashing_in_flight": "gauge",
    "keyport_hashing_wait_seconds": "histogram",
    "keyport_hashing_rejections_total": "counter",
    "keyport_session_cache_entries": "gauge",
    "keyport_session_cache_lookups_total": "counter",
    "keyport_event_subscribers": "gauge",
    "keyport_event_relay_lag_seconds": "histogram",
    "keyport_db_connections": "gauge",
    "keyport_db_max_connections": "gauge",
    "keyport_db_errors_total": "counter",
    "keyport_rate_limit_rejections_total": "counter",
    "keyport_mail_outbox_depth": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_start_time_seconds": "gauge",
    "keyport_build_info": "gauge",
}


class Checks:
    """Collects failures instead of stopping at the first one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures: list[str] = []
        self.passed = 0

    def check(self, ok: bool, what: str) -> bool:
        if ok:
            self.passed += 1
            print(f"  ok   {what}")
        else:
            self.failures.append(what)
            print(f"  FAIL {what}")
        return ok

    def finish(self) -> int:
        if self.failures:
            print(f"{self.name}: {len(self.failures)} of {self.passed + len(self.failures)} checks failed:")
            for failure in self.failures:
                print(f"  - {failure}")
            return 1
        print(f"{self.name}: {self.passed} checks passed")
        return 0


# ---------------------------------------------------------------- Helm


def load_docs(path: str) -> list[dict]:
    import yaml

    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def by_kind(docs: list[dict]) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


def check_pod_spec(c: Checks, owner: str, pod: dict, *, probes: bool) -> None:
    """The hardening every Keyport pod (server or migration Job) must have."""
    psc = pod.get("securityContext", {})
    c.check(psc.get("runAsNonRoot") is True, f"{owner}: pod runAsNonRoot")
    c.check(psc.get("runAsUser") == 10001 and psc.get("runAsGroup") == 10001, f"{owner}: pod runs as uid/gid 10001")
    c.check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{owner}: pod seccomp RuntimeDefault")
    c.check(pod.get("automountServiceAccountToken") is False, f"{owner}: no service account token mounted")
    for container in pod["containers"]:
        name = f"{owner}/{container['name']}"
        sc = container.get("securityContext", {})
        c.check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 10001, f"{name}: runAsNonRoot, uid 10001")
        c.check(sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem")
        c.check(sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation false")
        c.check(sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc.get("capabilities", {}).get("add"),
                f"{name}: drops ALL capabilities, adds none")
        c.check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: seccomp RuntimeDefault")
        c.check(sc.get("privileged") in (None, False), f"{name}: not privileged")
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        tmp = volumes.get(mounts.get("/tmp", ""), {})
        c.check("emptyDir" in tmp, f"{name}: /tmp is an emptyDir (read-only root)")
        res = container.get("resources", {})
        c.check(bool(res.get("requests", {}).get("memory")) and bool(res.get("limits", {}).get("memory")),
                f"{name}: memory request and limit set")
        if probes:
            for kind, service in (("startupProbe", None), ("readinessProbe", None), ("livenessProbe", "liveness")):
                probe = container.get(kind, {}).get("grpc", {})
                c.check(probe.get("port") == 50051 and probe.get("service") == service,
                        f"{name}: {kind} is a native gRPC probe on 50051, service {service or 'the whole server'}")
            env = {e["name"]: e for e in container.get("env", [])}
            c.check(env.get("KEYPORT_CONFIG", {}).get("value") == "/etc/keyport/keyport.toml",
                    f"{name}: KEYPORT_CONFIG points at the mounted keyport.toml")
            c.check(mounts.get("/etc/keyport/keyport.toml") == "config"
                    and "configMap" in volumes.get("config", {}), f"{name}: keyport.toml mounted from the ConfigMap")
            c.check(env.get("KEYPORT_LISTEN", {}).get("value") == "0.0.0.0:50051", f"{name}: listens on 0.0.0.0:50051")
            for e in env.values():
                c.check("value" not in e or not any(m in str(e["value"]) for m in SECRET_MARKERS),
                        f"{name}: env {e['name']} carries no secret value inline")


def check_configmap(c: Checks, docs: list[dict]) -> dict:
    cms = [d for d in docs if d["kind"] == "ConfigMap"]
    c.check(len(cms) == 1, "one ConfigMap")
    text = cms[0]["data"]["keyport.toml"]
    try:
        config = tomllib.loads(text)
        c.check(True, "ConfigMap keyport.toml is valid TOML")
    except tomllib.TOMLDecodeError as error:
        c.check(False, f"ConfigMap keyport.toml is valid TOML ({error})")
        config = {}
    dumped = json.dumps(cms[0])
    c.check(not any(m in dumped for m in SECRET_MARKERS), "ConfigMap holds none of the secret values")
    for key in ("database_url", "listen", "data_dir"):
        c.check(key not in config, f"ConfigMap sets no {key} (the chart's env owns it)")
    c.check("encryption_key" not in config.get("second_factors", {}), "ConfigMap has no second_factors.encryption_key")
    c.check("password" not in config.get("mail", {}), "ConfigMap has no mail.password")
    floats = [k for k, v in walk(config) if isinstance(v, float)]
    c.check(not floats, f"whole numbers stay integers in keyport.toml (floats: {floats})")
    return config


def walk(value, prefix=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{prefix}[{i}]")
    else:
        yield prefix, value


def check_common(c: Checks, docs: list[dict], workload: dict) -> None:
    kinds = by_kind(docs)
    template = workload["spec"]["template"]
    annotations = template["metadata"].get("annotations", {})
    c.check(re.fullmatch(r"[0-9a-f]{64}", annotations.get("checksum/config", "")) is not None,
            "pod template has a checksum/config annotation (rolls pods on config change)")
    selector = workload["spec"]["selector"]["matchLabels"]
    labels = template["metadata"]["labels"]
    c.check(all(labels.get(k) == v for k, v in selector.items()), "selector matches the pod labels")
    services = kinds.get("Service", [])
    main = [s for s in services if s["spec"].get("clusterIP") != "None"]
    c.check(len(main) == 1, "one ClusterIP Service and a headless one")
    c.check(any(p["port"] == 50051 and p["name"] == "grpc" for p in main[0]["spec"]["ports"]),
            "Service exposes grpc 50051")
    c.check(all(s["spec"]["selector"] == selector for s in services), "Services select the Keyport pods")
    nps = kinds.get("NetworkPolicy", [])
    c.check(len(nps) == 1, "NetworkPolicy present")
    if nps:
        np = nps[0]["spec"]
        c.check(set(np.get("policyTypes", [])) == {"Ingress", "Egress"}, "NetworkPolicy restricts ingress and egress")
        c.check(np["podSelector"]["matchLabels"] == selector, "NetworkPolicy selects the Keyport pods")
        grpc = [r for r in np.get("ingress", []) if any(p.get("port") == "grpc" for p in r.get("ports", []))]
        c.check(len(grpc) == 1 and grpc[0].get("from"), "NetworkPolicy admits gRPC only from the configured peers")
        dns = [r for r in np.get("egress", []) if any(p.get("port") == 53 for p in r.get("ports", []))]
        c.check(len(dns) == 1, "NetworkPolicy allows DNS egress")
        c.check(all(r.get("ports") for r in np.get("egress", [])), "every egress rule is limited to ports")
    pod = template["spec"]
    check_pod_spec(c, workload["kind"], pod, probes=True)
    container = pod["containers"][0]
    c.check(container.get("args") == ["serve"], "container runs `keyport serve`")
    pre = container.get("lifecycle", {}).get("preStop", {})
    c.check(bool(pre), "preStop hook keeps serving while endpoints drop the pod")
    c.check(pod.get("terminationGracePeriodSeconds", 30) > 15,
            "termination grace exceeds preStop + shutdown_grace_ms (10 s)")
    for doc in docs:
        if doc["kind"] != "Secret":
            c.check(not any(m in json.dumps(doc) for m in SECRET_MARKERS),
                    f"{doc['kind']} {doc['metadata']['name']} holds no secret value")


def helm_sqlite(path: str) -> int:
    c = Checks("helm (sqlite)")
    docs = load_docs(path)
    kinds = by_kind(docs)
    c.check("StatefulSet" in kinds and "Deployment" not in kinds, "sqlite mode renders a StatefulSet, no Deployment")
    c.check("PodDisruptionBudget" not in kinds, "no PodDisruptionBudget for a single SQLite pod")
    c.check("Job" not in kinds, "no migration Job in sqlite mode")
    c.check("Secret" not in kinds, "no Secret made when none is configured")
    if "StatefulSet" not in kinds:
        return c.finish()
    sts = kinds["StatefulSet"][0]
    c.check(sts["spec"]["replicas"] == 1, "StatefulSet has exactly 1 replica")
    claims = sts["spec"].get("volumeClaimTemplates", [])
    c.check(len(claims) == 1 and claims[0]["metadata"]["name"] == "data", "data PVC via volumeClaimTemplates")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    c.check(mounts.get("/var/lib/keyport") == "data", "PVC mounted at /var/lib/keyport")
    c.check(str(env.get("KEYPORT_DATA_DIR", "")).startswith("/var/lib/keyport"), "KEYPORT_DATA_DIR on the PVC")
    c.check("KEYPORT_DATABASE_URL" not in env, "no database URL in sqlite mode")
    check_common(c, docs, sts)
    check_configmap(c, docs)
    return c.finish()


def helm_postgres(path: str) -> int:
    c = Checks("helm (postgres)")
    docs = load_docs(path)
    kinds = by_kind(docs)
    c.check("Deployment" in kinds and "StatefulSet" not in kinds, "postgres mode renders a Deployment, no StatefulSet")
    if "Deployment" not in kinds:
        return c.finish()
    dep = kinds["Deployment"][0]
    c.check(dep["spec"]["replicas"] == 2, "Deployment defaults to 2 replicas")
    c.check(dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, "rolling update keeps every replica up")
    pdbs = kinds.get("PodDisruptionBudget", [])
    c.check(len(pdbs) == 1 and ("maxUnavailable" in pdbs[0]["spec"] or "minAvailable" in pdbs[0]["spec"]),
            "PodDisruptionBudget present")
    c.check(len(pdbs) == 1 and pdbs[0]["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"],
            "PodDisruptionBudget selects the Keyport pods")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    secret_names = {s["metadata"]["name"] for s in kinds.get("Secret", [])}
    for var in ("KEYPORT_DATABASE_URL", "KEYPORT_SECOND_FACTORS__ENCRYPTION_KEY"):
        ref = env.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
        c.check(ref.get("name") in secret_names, f"{var} comes from the chart's Secret")
    c.check(any("/var/lib/keyport" == m["mountPath"] for m in container["volumeMounts"]) is False,
            "no data volume for stateless replicas")
    secrets = kinds.get("Secret", [])
    c.check(len(secrets) == 1, "one Secret made from values")
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    c.check("checksum/secret" in annotations, "pods roll when the chart-made Secret changes")
    # Metrics, ServiceMonitor, migrations and tracing are switched on in this render.
    c.check(env.get("KEYPORT_METRICS__LISTEN", {}).get("value") == "0.0.0.0:9464", "metrics listener on 9464")
    c.check(any(p["name"] == "metrics" and p["containerPort"] == 9464 for p in container["ports"]),
            "container exposes the metrics port")
    main = [s for s in kinds["Service"] if s["spec"].get("clusterIP") != "None"][0]
    c.check(any(p["name"] == "metrics" and p["port"] == 9464 for p in main["spec"]["ports"]), "Service exposes metrics 9464")
    sms = kinds.get("ServiceMonitor", [])
    c.check(len(sms) == 1 and sms[0]["spec"]["endpoints"][0]["port"] == "metrics", "ServiceMonitor scrapes the metrics port")
    c.check(env.get("KEYPORT_TRACING__OTLP_ENDPOINT", {}).get("value", "").startswith("http"),
            "OTLP endpoint passed as KEYPORT_TRACING__OTLP_ENDPOINT")
    jobs = kinds.get("Job", [])
    c.check(len(jobs) == 1, "migration Job present")
    if jobs:
        job = jobs[0]
        hook = job["metadata"].get("annotations", {}).get("helm.sh/hook", "")
        c.check("pre-upgrade" in hook.split(","), "migration Job is a pre-upgrade hook")
        jc = job["spec"]["template"]["spec"]["containers"][0]
        c.check(jc.get("args") == ["migrate"], "migration Job runs `keyport migrate`")
        jenv = {e["name"]: e for e in jc["env"]}
        c.check("secretKeyRef" in jenv.get("KEYPORT_DATABASE_URL", {}).get("valueFrom", {}), "Job reads the database URL from the Secret")
        check_pod_spec(c, "Job", job["spec"]["template"]["spec"], probes=False)
    np = kinds["NetworkPolicy"][0]["spec"]
    c.check(any(p.get("port") == "metrics" for r in np["ingress"] for p in r.get("ports", [])),
            "NetworkPolicy admits metrics scrapes")
    c.check(any(p.get("port") == 5432 for r in np["egress"] for p in r.get("ports", [])), "NetworkPolicy allows PostgreSQL egress")
    c.check(any(p.get("port") == 4317 for r in np["egress"] for p in r.get("ports", [])), "NetworkPolicy allows OTLP egress")
    check_common(c, docs, dep)
    check_configmap(c, docs)
    return c.finish()


def write_toml(path: str, out: str) -> int:
    cms = [d for d in load_docs(path) if d["kind"] == "ConfigMap"]
    Path(out).write_text(cms[0]["data"]["keyport.toml"], encoding="utf-8")
    return 0


# ---------------------------------------------------------------- Containerfile


def parse_containerfile(path: str):
    from dockerfile_parse import DockerfileParser

    # Given a path, dockerfile-parse looks for a file named Dockerfile; a
    # file object takes any name.
    with open(path, "rb") as f:
        parser = DockerfileParser(fileobj=io.BytesIO(f.read()))
    return parser


def containerfile(path: str) -> int:
    c = Checks("Containerfile")
    text = Path(path).read_text(encoding="utf-8")
    parser = parse_containerfile(path)
    instructions = parser.structure
    # Resolve FROM ${ARG} with the ARG defaults, as a build without --build-arg does.
    args = {}
    for ins in instructions:
        if ins["instruction"] == "FROM":
            break
        if ins["instruction"] == "ARG" and "=" in ins["value"]:
            k, v = ins["value"].split("=", 1)
            args[k.strip()] = v.strip()
    stages: list[dict] = []
    for ins in instructions:
        if ins["instruction"] == "FROM":
            words = ins["value"].split()
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append({"image": image, "alias": alias, "ins": []})
        elif stages:
            stages[-1]["ins"].append(ins)
    c.check(len(stages) >= 2, f"multi-stage ({len(stages)} stages)")
    if len(stages) < 2:
        return c.finish()
    builder, final = stages[0], stages[-1]
    c.check(builder["image"] == "docker.io/library/rust:1-bookworm", f"builder stage FROM rust:1-bookworm ({builder['image']})")
    c.check(final["image"] in ("docker.io/library/debian:bookworm-slim", "gcr.io/distroless/cc-debian12"),
            f"runtime stage FROM debian:bookworm-slim or distroless cc ({final['image']})")
    runs = " ".join(i["value"] for i in builder["ins"] if i["instruction"] == "RUN")
    c.check(re.search(r"cargo build\b[^&]*--release", runs) is not None, "builder runs cargo build --release")
    c.check(re.search(r"cargo build\b[^&]*--locked", runs) is not None, "cargo build uses --locked")
    c.check(re.search(r"cargo build\b[^&]*-p keyport-server", runs) is not None, "cargo build -p keyport-server")
    final_of = lambda name: [i for i in final["ins"] if i["instruction"] == name]  # noqa: E731
    copies = [i["value"] for i in final_of("COPY")]
    c.check(any(f"--from={builder['alias']}" in v and "keyport" in v for v in copies),
            "runtime copies the keyport binary from the builder stage")
    final_runs = " ".join(i["value"] for i in final_of("RUN"))
    c.check("ca-certificates" in final_runs, "runtime installs ca-certificates")
    c.check("rm -rf /var/lib/apt/lists" in final_runs, "runtime drops the apt lists")
    users = [i["value"].strip() for i in final_of("USER")]
    c.check(bool(users), "runtime sets USER")
    last_user = users[-1] if users else ""
    uid = last_user.split(":")[0]
    c.check(uid == "10001", f"final USER is uid 10001 ({last_user!r})")
    c.check(uid not in ("0", "root") and uid.isdigit(), "final USER is numeric and not root (runAsNonRoot can verify it)")
    c.check("10001" in final_runs and "useradd" in final_runs, "runtime creates the uid 10001 user")
    healthchecks = [i["value"] for i in final_of("HEALTHCHECK")]
    c.check(len(healthchecks) == 1 and re.search(r'CMD \[\s*"keyport"\s*,\s*"health"\s*\]', healthchecks[0]) is not None,
            "HEALTHCHECK runs [\"keyport\", \"health\"]")
    volumes = " ".join(i["value"] for i in final_of("VOLUME"))
    c.check("/var/lib/keyport" in volumes, "VOLUME /var/lib/keyport for the data")
    env = " ".join(i["value"] for i in final_of("ENV"))
    c.check(re.search(r"KEYPORT_DATA_DIR=/var/lib/keyport\b", env) is not None, "ENV KEYPORT_DATA_DIR=/var/lib/keyport")
    c.check(re.search(r"KEYPORT_LISTEN=0\.0\.0\.0:50051\b", env) is not None, "ENV KEYPORT_LISTEN=0.0.0.0:50051")
    exposed = " ".join(i["value"] for i in final_of("EXPOSE")).split()
    c.check({"50051", "9464"} <= set(exposed), f"EXPOSE 50051 9464 ({exposed})")
    c.check([i["value"] for i in final_of("STOPSIGNAL")] == ["SIGTERM"], "STOPSIGNAL SIGTERM")
    c.check([json.loads(i["value"]) for i in final_of("ENTRYPOINT")] == [["keyport"]], 'ENTRYPOINT ["keyport"]')
    c.check([json.loads(i["value"]) for i in final_of("CMD")] == [["serve"]], 'CMD ["serve"]')
    adds = [i["value"] for i in instructions if i["instruction"] == "ADD"]
    c.check(not any(re.search(r"https?://", v) for v in adds), "no ADD of a URL")
    c.check(re.search(r"(curl|wget)[^|]*\|\s*(ba)?sh", text) is None, "no curl | sh")
    c.check(not any(i["instruction"] == "RUN" and "chmod 777" in i["value"] for i in instructions), "no chmod 777")
    ignore = Path(path).with_name(".containerignore")
    docker_ignore = Path(path).with_name("Containerfile.dockerignore")
    ignored = ignore.read_text(encoding="utf-8").split() if ignore.exists() else []
    c.check("**/target" in ignored and "**/node_modules" in ignored and ".git" in ignored,
            ".containerignore excludes target/, node_modules/ and .git")
    c.check(docker_ignore.exists() and docker_ignore.read_bytes() == ignore.read_bytes(),
            "Containerfile.dockerignore is identical to .containerignore")
    return c.finish()


def derive_runtime_only(path: str, out: str) -> int:
    """Writes the Containerfile with its builder stage replaced by one that
    holds a prebuilt binary (`keyport` in the build context): everything from
    the second FROM on is the recipe's own text, unchanged."""
    from dockerfile_parse import DockerfileParser

    lines = Path(path).read_text(encoding="utf-8").splitlines(keepends=True)
    froms = [i for i in parse_containerfile(path).structure if i["instruction"] == "FROM"]
    alias = froms[0]["value"].split()[2]
    head = [line for line in lines[: froms[0]["startline"]] if not line.lstrip().startswith("#")]
    stub = [f"FROM scratch AS {alias}\n", "COPY keyport /out/keyport\n\n"]
    Path(out).write_text("".join(head + stub + lines[froms[1]["startline"]:]), encoding="utf-8")
    return 0


def image(path: str) -> int:
    """The built image's configuration (podman image inspect), as an engine
    and an orchestrator will read it."""
    c = Checks("built image")
    inspected = json.loads(Path(path).read_text(encoding="utf-8"))[0]
    config = inspected["Config"]
    c.check(config.get("User") == "10001:10001", f"image user 10001:10001 ({config.get('User')!r})")
    # podman reports the health check beside Config, docker inside it.
    test = (config.get("Healthcheck") or inspected.get("Healthcheck") or {}).get("Test")
    c.check(test == ["CMD", "keyport", "health"], f"image keeps HEALTHCHECK keyport health ({test})")
    c.check("/var/lib/keyport" in (config.get("Volumes") or {}), "image declares the /var/lib/keyport volume")
    ports = set(config.get("ExposedPorts") or {})
    c.check({"50051/tcp", "9464/tcp"} <= ports, f"image exposes 50051 and 9464 ({sorted(ports)})")
    c.check(config.get("StopSignal") == "SIGTERM", "image stop signal SIGTERM")
    c.check(config.get("Entrypoint") == ["keyport"] and config.get("Cmd") == ["serve"], "entrypoint keyport, command serve")
    env = config.get("Env") or []
    c.check("KEYPORT_DATA_DIR=/var/lib/keyport" in env and "KEYPORT_LISTEN=0.0.0.0:50051" in env,
            "image environment sets the data dir and listen address")
    return c.finish()


# ---------------------------------------------------------------- systemd


def parse_unit(path: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def systemd(path: str) -> int:
    c = Checks("systemd unit")
    unit = parse_unit(path)
    svc = unit.get("Service", {})
    last = lambda key: (svc.get(key) or [None])[-1]  # noqa: E731
    env = {}
    for value in svc.get("Environment", []):
        k, _, v = value.partition("=")
        env[k] = v
    c.check(last("DynamicUser") == "yes" or (last("User") not in (None, "root", "0")),
            f"runs as an unprivileged user (User={last('User')}, DynamicUser={last('DynamicUser')})")
    expected = {
        "StateDirectory": "keyport",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "MemoryDenyWriteExecute": "yes",
        "LockPersonality": "yes",
        "RestrictNamespaces": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "UMask": "0077",
        "Restart": "on-failure",
        "SystemCallArchitectures": "native",
    }
    for key, value in expected.items():
        c.check(last(key) == value, f"{key}={value} (found {last(key)!r})")
    c.check(set((last("RestrictAddressFamilies") or "").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"},
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX")
    c.check("@system-service" in svc.get("SystemCallFilter", []), "SystemCallFilter=@system-service")
    c.check(any(v.startswith("~") and "@privileged" in v for v in svc.get("SystemCallFilter", [])),
            "SystemCallFilter denies @privileged")
    nofile = last("LimitNOFILE") or "0"
    c.check(nofile.isdigit() and int(nofile) > 4096 + 64, f"LimitNOFILE above server.max_connections + pool ({nofile})")
    c.check(env.get("KEYPORT_DATA_DIR") == "%S/keyport", "KEYPORT_DATA_DIR=%S/keyport (the StateDirectory)")
    c.check(re.fullmatch(r"\S*/keyport serve", last("ExecStart") or "") is not None, "ExecStart runs `keyport serve`")
    stop = last("TimeoutStopSec") or "90s"
    seconds = int(re.sub(r"s$", "", stop)) if re.fullmatch(r"\d+s?", stop) else 0
    c.check(seconds > 10, f"TimeoutStopSec ({stop}) longer than server.shutdown_grace_ms (10 s)")
    c.check(not any(re.search(r"(PASSWORD|ENCRYPTION_KEY|DATABASE_URL)=", v) for v in svc.get("Environment", [])),
            "no secrets in Environment= (EnvironmentFile instead)")
    c.check(unit.get("Install", {}).get("WantedBy") == ["multi-user.target"], "WantedBy=multi-user.target")
    return c.finish()


# ---------------------------------------------------------------- dashboard

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
    "sum", "avg", "min", "max", "count", "rate", "irate", "increase", "histogram_quantile", "time", "le",
}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not
    functions, keywords, label names (in {...} or by (...)) or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = m.group(0)
        after = text[m.end():].lstrip()
        if word in PROMQL_WORDS or after.startswith("("):
            continue
        names.add(word)
    return names


def base_metric(name: str) -> tuple[str, str]:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and METRICS.get(name[: -len(suffix)]) == "histogram":
            return name[: -len(suffix)], suffix
    return name, ""


def panels_of(dashboard: dict):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard(path: str, rules_out: str | None) -> int:
    c = Checks("Grafana dashboard")
    try:
        dash = json.loads(Path(path).read_text(encoding="utf-8"))
        c.check(True, "JSON parses")
    except json.JSONDecodeError as error:
        c.check(False, f"JSON parses ({error})")
        return c.finish()
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    c.check(ds.get("type") == "datasource" and ds.get("query") == "prometheus", "templated Prometheus ${datasource} variable")
    inst = variables.get("instance", {})
    c.check(inst.get("type") == "query" and "label_values" in json.dumps(inst.get("query")), "templated instance variable")
    c.check(bool(dash.get("uid")) and bool(dash.get("title")), "dashboard has a uid and a title")
    used: set[str] = set()
    exprs: list[tuple[str, str]] = []
    ids = []
    for panel in panels_of(dash):
        ids.append(panel.get("id"))
        if panel.get("type") == "row":
            continue
        title = panel.get("title", "?")
        c.check(panel.get("datasource", {}).get("uid") == "${datasource}", f"panel {title!r} uses ${{datasource}}")
        targets = panel.get("targets", [])
        c.check(bool(targets), f"panel {title!r} has a query")
        for target in targets:
            expr = target.get("expr", "")
            exprs.append((title, expr))
            c.check(target.get("datasource", {}).get("uid") == "${datasource}", f"{title!r} {target.get('refId')}: ${{datasource}}")
            c.check('instance=~"$instance"' in expr, f"{title!r} {target.get('refId')}: filtered by $instance")
            for name in metric_names(expr):
                base, suffix = base_metric(name)
                used.add(base)
                c.check(base in METRICS, f"{title!r}: {name} is an exported metric")
                kind = METRICS.get(base)
                if kind == "histogram":
                    c.check(suffix != "", f"{title!r}: histogram {base} used through _bucket/_sum/_count")
            for fn in ("rate", "irate", "increase"):
                for inner in re.findall(rf"\b{fn}\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", expr):
                    base, suffix = base_metric(inner)
                    c.check(METRICS.get(base) == "counter" or suffix, f"{title!r}: {fn}() over a counter ({inner})")
            if "histogram_quantile" in expr:
                c.check(re.search(r"histogram_quantile\(\s*0?\.\d+\s*,\s*sum by \([^)]*\ble\b", expr) is not None,
                        f"{title!r}: histogram_quantile keeps le in its sum")
    c.check(len(ids) == len(set(ids)), "panel ids are unique")
    missing = sorted(set(METRICS) - used)
    c.check(not missing, f"every exported metric is charted (missing: {missing})")
    if rules_out:
        # Grafana's variables are not PromQL: give them values promtool can parse.
        rules = []
        for i, (title, expr) in enumerate(exprs):
            concrete = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
            rules.append({"record": f"dashboard:panel_{i}", "expr": concrete, "labels": {"panel": title}})
        Path(rules_out).write_text(json.dumps({"groups": [{"name": "keyport-dashboard", "rules": rules}]}, indent=1),
                                   encoding="utf-8")
        print(f"  wrote {len(rules)} expressions to {rules_out} for promtool")
    return c.finish()


def metrics_types(path: str) -> int:
    """Compares a live scrape with METRICS: a charted name that Keyport
    exports with another type would make the dashboard's queries wrong."""
    c = Checks("live /metrics")
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", Path(path).read_text(encoding="utf-8"), re.M))
    c.check(bool(types), f"scrape has metric types ({len(types)})")
    present = sorted(set(METRICS) & set(types))
    for name in present:
        c.check(types[name] == METRICS[name], f"{name} is a {METRICS[name]} (exported: {types[name]})")
    absent = sorted(set(METRICS) - set(types))
    # Counters and histograms appear at their first sample, so an idle
    # server lacks some: reported, not failed.
    print(f"  info {len(present)} of {len(METRICS)} charted metrics in this scrape; not yet: {', '.join(absent) or 'none'}")
    return c.finish()


def grpc_web_call(base: str, path: str, message: bytes) -> tuple[str, bytes]:
    """One unary gRPC-web call over HTTP/1.1 (Keyport serves gRPC-web on its
    gRPC port), with the standard library only. Returns (grpc-status, reply)."""
    import struct
    import urllib.request

    request = urllib.request.Request(
        base + path,
        data=b"\x00" + struct.pack(">I", len(message)) + message,
        headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        status = response.headers.get("grpc-status")
        body = response.read()
    reply = b""
    while len(body) >= 5:
        flag, length = body[0], struct.unpack(">I", body[1:5])[0]
        frame, body = body[5 : 5 + length], body[5 + length :]
        if flag & 0x80:  # trailers
            for line in frame.decode().split("\r\n"):
                if line.lower().startswith("grpc-status:"):
                    status = line.split(":", 1)[1].strip()
        else:
            reply = frame
    return status or "?", reply


def pb_strings(*fields: str) -> bytes:
    """A protobuf message of string fields 1, 2, 3, ... (all short)."""
    out = b""
    for number, value in enumerate(fields, start=1):
        data = value.encode()
        out += bytes([number << 3 | 2, len(data)]) + data
    return out


def sign_up_in(base: str) -> int:
    """SignUp then SignIn with the same password: two argon2id hashes on the
    server's hashing threads, under whatever sandbox it runs in."""
    c = Checks("sign-up and sign-in over gRPC-web")
    email, password = "deploy-test@example.com", "a long deploy test passphrase"
    status, reply = grpc_web_call(base, "/keyport.v1.UserService/SignUp", pb_strings(email, password, "Deploy"))
    c.check(status == "0" and email.encode() in reply, f"SignUp answered OK (grpc-status {status})")
    status, reply = grpc_web_call(base, "/keyport.v1.SessionService/SignIn", pb_strings(email, password))
    c.check(status == "0" and b"kp_" in reply, f"SignIn answered OK with a session token (grpc-status {status})")
    status, _ = grpc_web_call(base, "/keyport.v1.SessionService/SignIn", pb_strings(email, "wrong password here"))
    c.check(status == "16", f"SignIn with a wrong password is UNAUTHENTICATED (grpc-status {status})")
    return c.finish()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["helm-sqlite", "helm-postgres", "containerfile", "runtime-only",
                                         "image", "systemd", "dashboard", "metrics-types", "toml", "sign-up-in"])
    parser.add_argument("file")
    parser.add_argument("--rules", help="dashboard: write a promtool rules file of its expressions")
    parser.add_argument("--out", help="toml, runtime-only: where to write")
    args = parser.parse_args()
    if args.what == "helm-sqlite":
        return helm_sqlite(args.file)
    if args.what == "helm-postgres":
        return helm_postgres(args.file)
    if args.what == "containerfile":
        return containerfile(args.file)
    if args.what == "runtime-only":
        return derive_runtime_only(args.file, args.out)
    if args.what == "sign-up-in":
        return sign_up_in(args.file)
    if args.what == "image":
        return image(args.file)
    if args.what == "systemd":
        return systemd(args.file)
    if args.what == "dashboard":
        return dashboard(args.file, args.rules)
    if args.what == "metrics-types":
        return metrics_types(args.file)
    return write_toml(args.file, args.out)


if __name__ == "__main__":
    sys.exit(main())
