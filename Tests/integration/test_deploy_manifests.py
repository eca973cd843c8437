"""The orchestrator files, checked by their structure (issue 24): deploy/kubernetes/ (a StatefulSet with
a PersistentVolumeClaim per stateful node, Deployments for the gateway and the edge, StatefulSets for the workers'
instance names, a Service per kind, a ConfigMap with the cluster config) and compose/ (Dockerfile,
docker-compose.yaml, its configs). No Kubernetes or Docker engine runs here, so nothing is applied:
every YAML document must parse, every kind and port of nimbus.yaml must have its objects, every probe
must be the process's own `nimbus health` check with a `nimbus` the image really contains, and every
container must request the resources measured in deploy/kubernetes/README.md. apiVersion, kind and the
fields the API server requires are checked by hand (kubeconform, when installed, checks them too).

Needs no cluster; one test runs the built `nimbus` CLI (skipped when it is not built) so that
ClusterConfig's own parser reads the configs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import NIMBUS_BIN, REPO

K8S = REPO / "deploy" / "kubernetes"
COMPOSE = REPO / "compose"
CONFIG_MOUNT = "/etc/nimbus"
CONFIG_FILE = f"{CONFIG_MOUNT}/nimbus.yaml"

# The kinds that keep durable state under their data directory (SQLite; the sink's mailboxes), each a
# StatefulSet with a volume claim; the gateway and the edge (stateless) are Deployments; workers are
# StatefulSets for their instance names only (deploy/kubernetes/README.md, Workers).
STATEFUL = {"iam", "queue", "table", "notifier", "mail-sink"}
WORKERS = {"ingest-worker", "stream-worker"}
DEPLOYMENTS = {"gateway", "edge"}

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# --------------------------------------------------------------------------------------------
# what the repository says
# --------------------------------------------------------------------------------------------


def load_yaml_documents(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def root_config() -> dict:
    return yaml.safe_load((REPO / "nimbus.yaml").read_text())


def port_of(endpoint: str) -> int:
    match = re.fullmatch(r"tcp://([^:]+):(\d+)", endpoint)
    assert match, f"not tcp://HOST:PORT: {endpoint}"
    return int(match.group(2))


def host_of(endpoint: str) -> str:
    return re.fullmatch(r"tcp://([^:]+):(\d+)", endpoint).group(1)


def kind_ports() -> dict[str, int]:
    """Each kind's ZeroMQ port (a worker kind's first instance) from the repository's nimbus.yaml."""
    return {kind: port_of(s["endpoint"]) for kind, s in root_config()["services"].items()}


def extra_ports() -> dict[str, dict[str, int]]:
    """The ports besides ZeroMQ: the gateway's HTTP (gateway.http), the edge's (edge.http) and the mail
    sink's SMTP (notifier.smtpPort)."""
    config = root_config()
    return {"gateway": {"http": int(config["gateway"]["http"].rsplit(":", 1)[1])},
            "edge": {"http": int(config["edge"]["http"].rsplit(":", 1)[1])},
            "mail-sink": {"smtp": int(config["notifier"]["smtpPort"])}}


def service_kinds() -> set[str]:
    """The raw values of ServiceKind's cases (Sources/NimbusConfig/ServiceKind.swift)."""
    text = (REPO / "Sources" / "NimbusConfig" / "ServiceKind.swift").read_text()
    body = text[text.index("enum ServiceKind"):]
    body = body[: body.index("public var")]
    return {raw or name for name, raw in re.findall(r'(?m)^\s*case (\w+)(?:\s*=\s*"([^"]+)")?\s*$', body)}


def executable_products() -> set[str]:
    """Every executable product of Package.swift: the service table's and the explicit ones."""
    text = (REPO / "Package.swift").read_text()
    table = re.findall(r'\(\s*"\w+"\s*,\s*"([\w-]+)"\s*\)', text)
    explicit = re.findall(r'\.executable\(\s*name:\s*"([\w-]+)"', text)
    return set(table) | set(explicit)


def dockerfile() -> str:
    return (COMPOSE / "Dockerfile").read_text()


def image_executables() -> set[str]:
    """The products the Dockerfile's build stage copies to /out, which lands in /usr/local/bin."""
    text = dockerfile()
    loop = re.search(r"for product in (.*?); do", text, re.S)
    assert loop, "the Dockerfile lists the products it copies in a `for product in ...; do` loop"
    assert re.search(r"COPY --from=build /out/ /usr/local/bin/", text), "the products are copied to /usr/local/bin"
    return set(loop.group(1).replace("\\\n", " ").split())


def image_files() -> set[str]:
    """Destination paths the runtime stage COPYs from the build context (file by file)."""
    runtime = dockerfile().split("\nFROM ")[-1]
    files = set()
    for line in runtime.splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not parts[1].startswith("--from"):
            *sources, destination = parts[1:]
            for source in sources:
                files.add(destination + Path(source).name if destination.endswith("/") else destination)
    return files


def k8s_objects() -> list[dict]:
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in load_yaml_documents(path):
            document["__file__"] = path.name
            objects.append(document)
    return objects


def find(objects: list[dict], kind: str, name: str) -> dict | None:
    matches = [o for o in objects if o.get("kind") == kind and o.get("metadata", {}).get("name") == name]
    assert len(matches) <= 1, f"{kind}/{name} is defined {len(matches)} times"
    return matches[0] if matches else None


def workload(objects: list[dict], kind: str) -> dict:
    expected = "Deployment" if kind in DEPLOYMENTS else "StatefulSet"
    found = find(objects, expected, kind)
    assert found, f"no {expected} {kind} under deploy/kubernetes/"
    return found


def the_container(obj: dict) -> dict:
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{obj['metadata']['name']}: one process per pod, not {len(containers)} containers"
    return containers[0]


def configmap_configs() -> dict[str, dict]:
    cm = find(k8s_objects(), "ConfigMap", "nimbus-config")
    assert cm, "no ConfigMap nimbus-config"
    return {key: yaml.safe_load(text) for key, text in cm["data"].items()}


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / 1_048_576


def measured() -> dict[str, dict[str, float]]:
    """The measured table of deploy/kubernetes/README.md (the first table after "### Measured"), by kind."""
    text = (K8S / "README.md").read_text()
    section = text[text.index("### Measured"):]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.fullmatch(r"[\d.]+", cells[1]):
            kind = re.sub(r"-\d+$", "", cells[0])
            rows[kind] = {"rss": float(cells[2]), "cores": float(cells[4])}
        elif rows and not line.strip():
            break
    return rows


# --------------------------------------------------------------------------------------------
# every file parses
# --------------------------------------------------------------------------------------------


def yaml_files() -> list[Path]:
    return sorted(list(K8S.glob("*.yaml")) + list(K8S.glob("*.yml")) + list(COMPOSE.glob("*.yaml")) + list(COMPOSE.glob("*.yml")))


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_document_parses(path):
    documents = load_yaml_documents(path)
    assert documents, f"{path} holds no YAML document"
    for document in documents:
        assert isinstance(document, dict), f"{path}: a document that is not a mapping"


def test_the_configmap_configs_parse():
    configs = configmap_configs()
    assert set(configs) == {"nimbus.yaml", "mail-sink.yaml"}
    assert all(isinstance(c, dict) for c in configs.values())


def test_the_kinds_in_nimbus_yaml_are_the_service_kinds():
    assert set(kind_ports()) == service_kinds()


# --------------------------------------------------------------------------------------------
# Kubernetes: one workload and one Service per kind, with nimbus.yaml's ports
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(kind_ports()))
def test_every_kind_has_its_workload_and_service_on_its_ports(kind):
    objects = k8s_objects()
    obj = workload(objects, kind)
    container = the_container(obj)
    ports = {"nimbus": kind_ports()[kind], **extra_ports().get(kind, {})}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == ports
    service = find(objects, "Service", kind)
    assert service, f"no Service {kind}"
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == ports
    for p in service["spec"]["ports"]:
        assert p.get("targetPort") in (p["port"], p["name"]), p
    labels = obj["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items(), "the Service selects the kind's pods"
    assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # the selector picks this kind's pods only
    for other in kind_ports():
        if other != kind:
            other_labels = workload(objects, other)["spec"]["template"]["metadata"]["labels"]
            assert not service["spec"]["selector"].items() <= other_labels.items(), f"Service {kind} also selects {other}"
    # the process binds the port its Service forwards to
    command = container["command"]
    assert command[0] == f"nimbus-{kind}"
    config = configmap_configs()["mail-sink.yaml" if kind == "mail-sink" else "nimbus.yaml"]
    bind = command[command.index("--bind") + 1] if "--bind" in command else config["services"][kind]["bind"]
    assert bind == f"tcp://0.0.0.0:{ports['nimbus']}"


@pytest.mark.parametrize("kind", sorted(STATEFUL))
def test_every_stateful_node_keeps_its_data_on_a_volume_claim(kind):
    obj = workload(k8s_objects(), kind)
    assert obj["kind"] == "StatefulSet" and obj["spec"]["replicas"] == 1
    claims = {c["metadata"]["name"]: c for c in obj["spec"].get("volumeClaimTemplates", [])}
    assert claims, f"{kind} has no volumeClaimTemplates"
    data_directory = configmap_configs()["nimbus.yaml"]["dataDirectory"]
    mounts = {m["mountPath"]: m["name"] for m in the_container(obj)["volumeMounts"]}
    assert mounts.get(data_directory) in claims, f"{kind}'s {data_directory} is not on its claim"
    claim = claims[mounts[data_directory]]["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"]
    # more than the disk alarm's floor, or every write is refused from the start
    assert mebibytes(claim["resources"]["requests"]["storage"]) > 4 * root_config()["storage"]["minFreeDiskMB"]


@pytest.mark.parametrize("kind", sorted(set(kind_ports()) - STATEFUL))
def test_stateless_kinds_have_no_volume_claim(kind):
    obj = workload(k8s_objects(), kind)
    assert "volumeClaimTemplates" not in obj["spec"]
    volumes = {v["name"]: v for v in obj["spec"]["template"]["spec"]["volumes"]}
    data_directory = configmap_configs()["nimbus.yaml"]["dataDirectory"]
    mount = next(m for m in the_container(obj)["volumeMounts"] if m["mountPath"] == data_directory)
    assert "emptyDir" in volumes[mount["name"]]


@pytest.mark.parametrize("kind", sorted(WORKERS))
def test_each_worker_pod_runs_a_distinct_instance_name(kind):
    """Pods ingest-worker-1, -2, ... (ordinals from 1) each run as that instance: --name is the pod's name."""
    obj = workload(k8s_objects(), kind)
    spec = obj["spec"]
    assert spec["ordinals"]["start"] == 1
    assert spec["serviceName"] == kind
    assert spec["replicas"] == root_config()["services"][kind].get("instances", 1)
    container = the_container(obj)
    command = container["command"]
    assert command[command.index("--name") + 1] == "$(POD_NAME)"
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # every instance binds the kind's first port in its own pod
    assert command[command.index("--bind") + 1] == f"tcp://0.0.0.0:{kind_ports()[kind]}"


def test_the_statefulsets_have_their_governing_services():
    objects = k8s_objects()
    for obj in objects:
        if obj.get("kind") == "StatefulSet":
            assert find(objects, "Service", obj["spec"]["serviceName"]), obj["metadata"]["name"]


# --------------------------------------------------------------------------------------------
# probes: the process's own health check, with a `nimbus` the image has
# --------------------------------------------------------------------------------------------


def probe_commands(kind: str, container: dict) -> dict[str, list[str]]:
    probes = {}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert probe in container, f"{kind}: no {probe}"
        probes[probe] = container[probe]["exec"]["command"]
    return probes


@pytest.mark.parametrize("kind", sorted(kind_ports()))
def test_probes_call_the_process_own_health_check(kind):
    container = the_container(workload(k8s_objects(), kind))
    for probe, command in probe_commands(kind, container).items():
        assert command[:3] == ["nimbus", "health", kind], (probe, command)
        mode = "--ready" if probe == "readinessProbe" else "--live"
        assert mode in command and ({"--live", "--ready"} - {mode}).isdisjoint(command), (probe, command)
        assert command[command.index("--endpoint") + 1] == f"tcp://127.0.0.1:{kind_ports()[kind]}"
        assert command[command.index("--config") + 1] == CONFIG_FILE
        timeout = container[probe]["timeoutSeconds"]
        assert timeout >= 3, f"{kind} {probe}: the CLI may take 2 s (two 1 s attempts) to give up"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert CONFIG_MOUNT in mounts


def test_nimbus_is_an_executable_product_copied_into_the_image():
    products = executable_products()
    assert "nimbus" in products
    assert products <= image_executables(), f"not copied into the image: {sorted(products - image_executables())}"


def test_every_command_the_manifests_run_is_in_the_image():
    executables = image_executables()
    for obj in k8s_objects():
        if obj.get("kind") in ("Deployment", "StatefulSet"):
            container = the_container(obj)
            assert container["command"][0] in executables
            for command in probe_commands(obj["metadata"]["name"], container).values():
                assert command[0] in executables
    for name, service in compose()["services"].items():
        assert service["command"][0] in executables, name
        assert service["healthcheck"]["test"][1] in executables, name


def test_the_image_has_the_stack_and_the_data_directory_the_configs_name():
    files = image_files()
    for config in [*configmap_configs().values(), *compose_configs().values()]:
        assert config["stack"] in files, f"the image has no {config['stack']}"
        assert config["dataDirectory"] == "/var/lib/nimbus"
    text = dockerfile()
    assert "mkdir -p /var/lib/nimbus && chown nimbus:nimbus /var/lib/nimbus" in text
    assert re.search(r"(?m)^USER nimbus$", text)
    # the resource bundles beside the executables (the gateway's console page)
    assert "-name '*.resources'" in text


# --------------------------------------------------------------------------------------------
# resources: requests from the measured table
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(kind_ports()))
def test_every_container_requests_a_bit_more_than_measured(kind):
    container = the_container(workload(k8s_objects(), kind))
    requests = container["resources"]["requests"]
    limits = container["resources"]["limits"]
    row = measured()[kind]
    cpu, memory = cpu_cores(requests["cpu"]), mebibytes(requests["memory"])
    assert row["cores"] < cpu <= max(0.05, 2 * row["cores"] + 0.05), (kind, requests, row)
    assert row["rss"] < memory <= 2 * row["rss"], (kind, requests, row)
    # the memory alarm refuses writes over maxMemoryPercent of the cgroup limit: the limit leaves room
    share = root_config()["storage"]["maxMemoryPercent"] / 100
    assert mebibytes(limits["memory"]) * share > 2 * memory, (kind, limits)
    assert "cpu" not in limits, "no CPU limit: throttling would stall the I/O thread (README)"


def test_the_measured_table_covers_every_kind():
    assert set(measured()) == set(kind_ports())


# --------------------------------------------------------------------------------------------
# the ConfigMap's config: Service names, binds on 0.0.0.0, no IAM enforcement
# --------------------------------------------------------------------------------------------


def check_config(config: dict, hosts: dict[str, str]) -> None:
    ports = kind_ports()
    assert set(config["services"]) == set(ports)
    for kind, settings in config["services"].items():
        assert settings["endpoint"] == f"tcp://{hosts[kind]}:{ports[kind]}", kind
        assert settings["bind"] == f"tcp://0.0.0.0:{ports[kind]}", kind
    assert config["iam"]["enforce"] is False
    assert config["console"]["enabled"] is False
    assert config["gateway"]["http"] == f"0.0.0.0:{extra_ports()['gateway']['http']}"
    assert config["edge"]["http"] == f"0.0.0.0:{extra_ports()['edge']['http']}"
    assert config["notifier"]["smtpPort"] == extra_ports()["mail-sink"]["smtp"]


def test_the_configmap_finds_every_process_by_its_service_name():
    configs = configmap_configs()
    check_config(configs["nimbus.yaml"], {kind: kind for kind in kind_ports()})
    assert configs["nimbus.yaml"]["notifier"]["smtpHost"] == "mail-sink"
    # the sink's config differs only where it listens
    sink = configs["mail-sink.yaml"]
    assert sink["notifier"].pop("smtpHost") == "0.0.0.0"
    configs["nimbus.yaml"]["notifier"].pop("smtpHost")
    assert sink == configs["nimbus.yaml"]
    sink_command = the_container(workload(k8s_objects(), "mail-sink"))["command"]
    assert sink_command[sink_command.index("--config") + 1] == f"{CONFIG_MOUNT}/mail-sink.yaml"


def test_every_pod_mounts_the_configmap():
    for obj in k8s_objects():
        if obj.get("kind") in ("Deployment", "StatefulSet"):
            volumes = obj["spec"]["template"]["spec"]["volumes"]
            config = [v for v in volumes if v.get("configMap", {}).get("name") == "nimbus-config"]
            assert config, obj["metadata"]["name"]
            mount = next(m for m in the_container(obj)["volumeMounts"] if m["name"] == config[0]["name"])
            assert mount["mountPath"] == CONFIG_MOUNT and mount.get("readOnly") is True


def config_files() -> dict[str, str]:
    files = {f"configmap {key}": text for key, text in find(k8s_objects(), "ConfigMap", "nimbus-config")["data"].items()}
    for name in ("nimbus.yaml", "mail-sink.yaml"):
        files[f"compose/{name}"] = (COMPOSE / name).read_text()
    return files


def test_the_configs_parse_with_clusterconfig_itself(tmp_path):
    """ClusterConfig's parser (through the built CLI) rejects unknown keys and bad values: each config
    must load; the CLI then fails only because nothing answers on the closed port it is pointed at."""
    cli = NIMBUS_BIN / "nimbus"
    if not cli.exists():
        pytest.skip(f"{cli} is not built")
    runs = {}
    for label, text in config_files().items():
        path = tmp_path / (re.sub(r"\W+", "-", label) + ".yaml")
        path.write_text(text)
        runs[label] = subprocess.Popen([str(cli), "health", "supervisor", "--live", "--config", str(path),
                                        "--endpoint", "tcp://127.0.0.1:1"], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    for label, run in runs.items():
        _, stderr = run.communicate(timeout=30)
        assert run.returncode == 1 and "does not answer on tcp://127.0.0.1:1" in stderr, f"{label}: {stderr}"


def test_configs_turn_curve_off():
    """Every pod (and compose container) has a data directory of its own, so no process has its peers'
    CURVE public keys (<data>/keys/public/NAME.key): the configs say `security.curve: off` (until keys
    are distributed; deploy/kubernetes/README.md, Transport security)."""
    for label, text in config_files().items():
        config = yaml.safe_load(text)
        assert config.get("security", {}).get("curve") == "off", (
            f"{label}: set `security: {{curve: \"off\"}}` (per-pod data directories share no CURVE keys)")


# --------------------------------------------------------------------------------------------
# apiVersion, kind and required fields, by hand (no kubeconform, no kubectl here)
# --------------------------------------------------------------------------------------------

API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "Service": "v1", "ConfigMap": "v1", "Namespace": "v1"}


def check_pod_template(name: str, spec: dict) -> None:
    template = spec["template"]
    selector = spec["selector"]["matchLabels"]
    assert selector and selector.items() <= template["metadata"]["labels"].items(), f"{name}: selector does not match the template"
    pod = template["spec"]
    volumes = {v["name"] for v in pod.get("volumes", [])} | {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    for container in pod["containers"]:
        assert DNS_LABEL.match(container["name"]) and container["image"], name
        assert isinstance(container["command"], list) and all(isinstance(a, str) for a in container["command"])
        for port in container.get("ports", []):
            assert 1 <= port["containerPort"] <= 65535 and len(port["name"]) <= 15 and DNS_LABEL.match(port["name"]), port
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes and mount["mountPath"].startswith("/"), (name, mount)
        for env in container.get("env", []):
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env["name"]) and ("value" in env or "valueFrom" in env)
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in container:
                handler = container[probe]
                assert sum(k in handler for k in ("exec", "httpGet", "tcpSocket", "grpc")) == 1, (name, probe)
                for field in ("periodSeconds", "timeoutSeconds", "failureThreshold"):
                    assert isinstance(handler.get(field, 1), int) and handler.get(field, 1) >= 1
        for quantity in container["resources"]["requests"].values():
            assert re.fullmatch(r"\d+(\.\d+)?(m|Ki|Mi|Gi)?", quantity), quantity
    context = pod.get("securityContext", {})
    if context.get("runAsNonRoot"):
        assert context.get("runAsUser", 0) != 0


def test_every_object_has_its_api_version_and_required_fields():
    objects = k8s_objects()
    configmaps = {o["metadata"]["name"] for o in objects if o.get("kind") == "ConfigMap"}
    for obj in objects:
        kind, where = obj.get("kind"), obj["__file__"]
        if kind == "Kustomization":
            assert obj["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
            listed = set(obj["resources"])
            on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
            assert listed == on_disk, f"kustomization.yaml lists {sorted(listed)}, the folder has {sorted(on_disk)}"
            continue
        assert kind in API_VERSIONS, f"{where}: unexpected kind {kind}"
        assert obj.get("apiVersion") == API_VERSIONS[kind], f"{where}: {kind} needs apiVersion {API_VERSIONS[kind]}"
        name = obj["metadata"]["name"]
        assert DNS_LABEL.match(name) and len(name) <= 63, f"{where}: {name}"
        if kind == "Service":
            spec = obj["spec"]
            assert spec.get("type", "ClusterIP") == "ClusterIP" and spec["selector"], name
            assert spec["ports"] and len({p["name"] for p in spec["ports"]}) == len(spec["ports"])
            for port in spec["ports"]:
                assert 1 <= port["port"] <= 65535 and len(port["name"]) <= 15 and DNS_LABEL.match(port["name"]), port
        elif kind == "ConfigMap":
            assert all(isinstance(v, str) for v in obj["data"].values())
            assert all(re.fullmatch(r"[-._a-zA-Z0-9]+", k) for k in obj["data"])
        elif kind == "Deployment":
            assert obj["spec"]["replicas"] >= 1
            check_pod_template(name, obj["spec"])
        elif kind == "StatefulSet":
            spec = obj["spec"]
            assert spec["serviceName"] and spec["replicas"] >= 0
            assert spec.get("podManagementPolicy", "OrderedReady") in ("OrderedReady", "Parallel")
            assert spec.get("ordinals", {}).get("start", 0) >= 0
            for claim in spec.get("volumeClaimTemplates", []):
                assert claim["spec"]["accessModes"] and claim["spec"]["resources"]["requests"]["storage"]
            check_pod_template(name, spec)
        if kind in ("Deployment", "StatefulSet"):
            for volume in obj["spec"]["template"]["spec"].get("volumes", []):
                if "configMap" in volume:
                    assert volume["configMap"]["name"] in configmaps, f"{name}: no ConfigMap {volume['configMap']['name']}"


def test_kubeconform_when_installed():
    tool = shutil.which("kubeconform")
    if not tool:
        pytest.skip("kubeconform is not installed (the checks above stand in for it)")
    files = [str(p) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"]
    result = subprocess.run([tool, "-strict", "-summary", *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------------
# compose
# --------------------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((COMPOSE / "docker-compose.yaml").read_text())


def compose_configs() -> dict[str, dict]:
    return {name: yaml.safe_load((COMPOSE / name).read_text()) for name in ("nimbus.yaml", "mail-sink.yaml")}


def test_compose_runs_every_kind_on_its_port_with_its_health_check():
    services = compose()["services"]
    ports = kind_ports()
    for kind, port in ports.items():
        name = f"{kind}-1" if kind in WORKERS else kind
        assert name in services, f"compose has no service {name}"
        service = services[name]
        assert service["image"] == "nimbus:dev" and service["build"]["dockerfile"] == "compose/Dockerfile"
        assert service["restart"] == "always"
        command = service["command"]
        assert command[0] == f"nimbus-{kind}"
        expected_config = "/etc/nimbus/mail-sink.yaml" if kind == "mail-sink" else CONFIG_FILE
        assert command[command.index("--config") + 1] == expected_config
        if kind in WORKERS:
            assert command[command.index("--name") + 1] == name
            assert command[command.index("--bind") + 1] == f"tcp://0.0.0.0:{port}"
        test = service["healthcheck"]["test"]
        assert test[:5] == ["CMD", "nimbus", "health", name, "--ready"], test
        assert test[test.index("--endpoint") + 1] == f"tcp://127.0.0.1:{port}"
        assert test[test.index("--config") + 1] == CONFIG_FILE
        assert int(service["healthcheck"]["timeout"].rstrip("s")) >= 3
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services and condition["condition"] == "service_healthy"
    assert set(services) == {f"{k}-1" if k in WORKERS else k for k in ports}


def test_compose_keeps_each_stateful_node_on_a_volume_of_its_own():
    document = compose()
    services = document["services"]
    volumes = {}
    for kind in STATEFUL:
        mounts = [v for v in services[kind].get("volumes", []) if v.endswith(":/var/lib/nimbus")]
        assert len(mounts) == 1, f"{kind} keeps /var/lib/nimbus on no volume"
        volumes[kind] = mounts[0].split(":")[0]
        assert volumes[kind] in document["volumes"]
    assert len(set(volumes.values())) == len(volumes), "each stateful node has its own volume"
    for name, service in services.items():
        if name not in STATEFUL:
            assert not service.get("volumes"), f"{name} is stateless"


def test_compose_configs_find_every_process_by_its_service_name():
    configs = compose_configs()
    hosts = {kind: f"{kind}-1" if kind in WORKERS else kind for kind in kind_ports()}
    check_config(configs["nimbus.yaml"], hosts)
    assert configs["nimbus.yaml"]["notifier"]["smtpHost"] == "mail-sink"
    assert configs["mail-sink.yaml"]["notifier"].pop("smtpHost") == "0.0.0.0"
    configs["nimbus.yaml"]["notifier"].pop("smtpHost")
    assert configs["mail-sink.yaml"] == configs["nimbus.yaml"]
    for kind in ("gateway", "edge"):
        published = compose()["services"][kind]["ports"]
        assert f"127.0.0.1:{extra_ports()[kind]['http']}:{extra_ports()[kind]['http']}" in published, kind


def test_the_dockerfile_builds_every_target_the_manifest_needs():
    text = dockerfile()
    assert re.search(r"swift build -c release", text)
    # the manifest names test targets too (Tests/Support is a library target), so their folders go in
    assert re.search(r"(?m)^COPY Tests Tests$", text) and re.search(r"(?m)^COPY Sources Sources$", text)
    copied = image_files()
    for name in ("nimbus.yaml", "mail-sink.yaml"):
        assert f"/etc/nimbus/{name}" in copied
    ignore = (COMPOSE / "Dockerfile.dockerignore").read_text().split()
    for needed in ("!Package.swift", "!Sources/", "!Tests/", "!stacks/", "!compose/nimbus.yaml", "!compose/mail-sink.yaml"):
        assert needed in ignore
