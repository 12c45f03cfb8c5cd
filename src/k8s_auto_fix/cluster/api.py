"""Talking to an API server: the kubeconfig, discovery, namespaces, dry runs.

A server-side dry run (``?dryRun=All``) puts an object through everything a
real create does (defaulting, strict field validation, admission: Pod
Security, ValidatingAdmissionPolicy) and stores nothing. Requests go in
parallel over one HTTP/1.1 connection pool.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from .local import ClusterError

PARALLEL_REQUESTS = 8
CRD_READY_TIMEOUT_S = 60


@dataclass(frozen=True)
class Resource:
    plural: str
    namespaced: bool


@dataclass
class DryRun:
    """What the server said about one object: None when it would be admitted."""

    error: str | None
    warnings: list[str] = field(default_factory=list)


class KubeClient:
    def __init__(self, server: str, headers: dict[str, str], verify):
        self.server = server.rstrip("/")
        self.http = httpx.Client(
            base_url=self.server, headers=headers, verify=verify, timeout=30,
            limits=httpx.Limits(max_connections=PARALLEL_REQUESTS),
        )  # fmt: skip
        self._resources: dict[tuple[str, str], Resource] | None = None
        self._namespaces: set[str] = set()

    # --- kubeconfig ---------------------------------------------------------------

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike | None = None) -> KubeClient:
        """The current context of ``path`` (else $KUBECONFIG, else ~/.kube/config)."""
        path = Path(path or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube" / "config")
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ClusterError(f"{path}: cannot read the kubeconfig: {err}") from None
        context_name = config.get("current-context")
        context = _named(config.get("contexts"), context_name)
        if not context:
            raise ClusterError(f"{path}: no current context (start one with `k8s-auto-fix cluster up`)")
        cluster = _named(config.get("clusters"), context.get("cluster")) or {}
        user = _named(config.get("users"), context.get("user")) or {}
        if not cluster.get("server"):
            raise ClusterError(f"{path}: context {context_name!r} names no server")
        authority = _file_of(cluster, "certificate-authority", path)
        verify = False if cluster.get("insecure-skip-tls-verify") else ssl.create_default_context(cafile=authority) if authority else True
        headers = {}
        token = user.get("token") or (Path(user["tokenFile"]).read_text().strip() if user.get("tokenFile") else None)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if user.get("client-certificate") or user.get("client-certificate-data"):
            if not isinstance(verify, ssl.SSLContext):
                verify = ssl.create_default_context() if verify else _no_verification()
            verify.load_cert_chain(_file_of(user, "client-certificate", path), _file_of(user, "client-key", path))
        return cls(cluster["server"], headers, verify)

    # --- discovery ------------------------------------------------------------------

    def resources(self, refresh: bool = False) -> dict[tuple[str, str], Resource]:
        """(apiVersion, kind) -> its REST resource, for every version the server serves."""
        if self._resources is None or refresh:
            found: dict[tuple[str, str], Resource] = {}
            versions = ["v1"] + [
                v["groupVersion"] for g in self._get("/apis").get("groups", []) for v in g.get("versions", [])
            ]
            for version in versions:
                base = "/api/v1" if version == "v1" else f"/apis/{version}"
                for r in self._get(base).get("resources", []):
                    if "/" not in r["name"]:  # not a subresource
                        found[(version, r["kind"])] = Resource(r["name"], r["namespaced"])
            self._resources = found
        return self._resources

    # --- objects -------------------------------------------------------------------------

    def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """The namespace, with ``labels``, and its ``default`` ServiceAccount
        (no controller manager runs to make it, and admission needs it)."""
        if name in self._namespaces and not labels:
            return
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
        response = self.http.post("/api/v1/namespaces", json=body)
        if response.status_code == 409 and labels:
            response = self.http.patch(
                f"/api/v1/namespaces/{name}", json={"metadata": {"labels": labels}}, headers={"Content-Type": "application/merge-patch+json"}
            )
        _raise_unless(response, (200, 201, 409), f"namespace {name}")
        self.ensure_service_account(name, "default")
        self._namespaces.add(name)

    def ensure_service_account(self, namespace: str, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}
        _raise_unless(self.http.post(f"/api/v1/namespaces/{namespace}/serviceaccounts", json=body), (201, 409), f"ServiceAccount {namespace}/{name}")

    def apply_crds(self, crds: Iterable[dict]) -> None:
        """Create the CRDs for real (a dry run cannot serve their kinds), and wait until they are served."""
        names = []
        for crd in crds:
            response = self.http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
            if response.status_code in (200, 201, 409):
                names.append((crd.get("metadata") or {}).get("name"))
        deadline = time.monotonic() + CRD_READY_TIMEOUT_S
        for name in filter(None, names):
            while time.monotonic() < deadline:
                status = self._get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}").get("status") or {}
                conditions = status.get("conditions") or []  # null until the server has looked at it
                if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                    break
                time.sleep(0.2)
        if names:
            self.resources(refresh=True)

    def dry_run(self, obj: dict, namespace: str | None = None) -> DryRun:
        """Create ``obj`` with ``dryRun=All`` and strict field validation (in
        ``namespace`` when given, else its own, else ``default``)."""
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        resource = self.resources().get((api_version, kind))
        if resource is None:
            return DryRun(f"the server does not serve {kind} in {api_version}")
        url = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if resource.namespaced:
            metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            namespace = namespace or metadata.get("namespace") or "default"
            if metadata.get("namespace") != namespace:
                obj = {**obj, "metadata": {**metadata, "namespace": namespace}}
            try:
                self._prepare(namespace, obj)
            except ClusterError as err:  # an invalid name is this object's own error
                return DryRun(str(err))
            url += f"/namespaces/{namespace}"
        response = self.http.post(f"{url}/{resource.plural}", params={"dryRun": "All", "fieldValidation": "Strict"}, json=obj)
        warnings = [w.split(" ", 2)[-1].strip('"') for w in response.headers.get_list("warning")]
        if response.status_code in (200, 201):
            return DryRun(None, warnings)
        return DryRun(_message(response), warnings)

    def _prepare(self, namespace: str, obj: dict) -> None:
        """What admission needs before ``obj`` can be created: its namespace, and a Pod's ServiceAccount."""
        self.ensure_namespace(namespace)
        if obj.get("kind") == "Pod" and obj.get("apiVersion") == "v1":
            spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
            account = spec.get("serviceAccountName") or spec.get("serviceAccount")
            if isinstance(account, str) and account and account != "default":
                self.ensure_service_account(namespace, account)

    def dry_run_all(self, objects: Sequence[dict], namespace: str | None = None) -> list[DryRun]:
        """Each object's own result, in order; requests run in parallel."""
        for ns in {namespace} if namespace else {_namespace_of(o) for o in objects}:
            try:
                self.ensure_namespace(ns)  # once, before the parallel requests
            except ClusterError:
                pass  # each object in it reports the error as its own
        with ThreadPoolExecutor(PARALLEL_REQUESTS) as pool:
            return list(pool.map(lambda o: self.dry_run(o, namespace), objects))

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str) -> dict:
        response = self.http.get(path)
        _raise_unless(response, (200,), path)
        return response.json()


def _named(items, name) -> dict | None:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            inner = next((v for k, v in item.items() if k != "name"), None)
            return inner if isinstance(inner, dict) else None
    return None


def _file_of(section: dict, key: str, kubeconfig: Path) -> str | None:
    """A kubeconfig file reference, or its inline ``-data`` written to a temporary file."""
    if section.get(key):
        path = Path(section[key])
        return str(path if path.is_absolute() else kubeconfig.parent / path)
    data = section.get(f"{key}-data")
    if not data:
        return None
    handle = tempfile.NamedTemporaryFile(prefix="k8s-auto-fix-", suffix=".pem", delete=False)
    handle.write(base64.b64decode(data))
    handle.close()
    return handle.name


def _no_verification() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _namespace_of(obj: dict) -> str:
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return str(metadata.get("namespace") or "default")


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("message") or body)
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"


def _raise_unless(response: httpx.Response, codes: tuple[int, ...], what: str) -> None:
    if response.status_code not in codes:
        raise ClusterError(f"{what}: {_message(response)}")
