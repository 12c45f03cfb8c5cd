"""risk: how much each finding matters, from what the tool can see offline.

    R = 0.5 * severity + 0.25 * exposure + 0.25 * vulnerability      (0..1)

- severity: the check's, as 1.0 critical, 0.75 high, 0.5 medium, 0.25 low;
- exposure: 1.0 when a LoadBalancer or NodePort Service, or an Ingress, reaches
  the workload's pods; 0.5 for hostNetwork or a privileged container; else 0;
- vulnerability: the highest EPSS probability among the CVEs Trivy found in
  the workload's images (0 without reports);
- kev: any of those CVEs is in CISA's Known Exploited Vulnerabilities list
  (kept apart: the scheduler adds a bonus for it).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..contracts import Detection, RiskRecord
from ..manifests.context import Application
from ..manifests.objects import K8sObject
from ..manifests.selectors import SelectorError, from_match_labels
from ..manifests.store import ObjectStore
from .feeds import ImageVulns, normalise_image, read_epss, read_kev, read_trivy

EXPOSED_SERVICE_TYPES = {"LoadBalancer", "NodePort"}


def risk_value(severity_weight: float, exposure: float, max_epss: float) -> float:
    return round(min(1.0, 0.5 * severity_weight + 0.25 * exposure + 0.25 * max_epss), 4)


def load_vulnerabilities(trivy_reports: Iterable[Path]) -> dict[str, ImageVulns]:
    images: dict[str, ImageVulns] = {}
    for report in trivy_reports:
        for image, vulns in read_trivy(report).items():
            images.setdefault(image, ImageVulns()).cves |= vulns.cves
    return images


def score_risk(
    detections: Iterable[Detection],
    epss_csv: Path | None = None,
    kev_json: Path | None = None,
    trivy_reports: Iterable[Path] = (),
    store: ObjectStore | None = None,
) -> list[RiskRecord]:
    epss = read_epss(epss_csv) if epss_csv else {}
    kev = read_kev(kev_json) if kev_json else set()
    vulns = load_vulnerabilities(trivy_reports)
    store = store or ObjectStore()
    records = []
    entry_points: dict[str, dict] = {}  # per application
    for d in detections:
        obj = store.object(d.manifest_path, d.document_index, d.list_index)
        exposure, reasons = 0.0, []
        if obj is not None:
            app = store.application(d.application, d.manifest_path)
            if app.key not in entry_points:
                entry_points[app.key] = _entry_points(app)
            exposure, reasons = exposure_of(obj, app, entry_points[app.key])
        images = sorted({normalise_image(str(c.spec.get("image", ""))) for c in obj.containers}) if obj is not None else []
        cves = set().union(*(vulns[i].cves for i in images if i in vulns)) if images else set()
        max_epss = max((epss.get(c, 0.0) for c in cves), default=0.0)
        weight = d.severity.weight
        kev_cves = sorted(cves & kev)
        records.append(
            RiskRecord(
                id=d.id,
                policy_id=d.policy_id,
                risk=risk_value(weight, exposure, max_epss),
                severity=d.severity,
                severity_weight=weight,
                exposure=exposure,
                exposure_reasons=reasons,
                images=images,
                cves=len(cves),
                max_epss=round(max_epss, 5),
                kev=bool(kev_cves),
                kev_cves=kev_cves,
            )
        )
    return records


def exposure_of(obj: K8sObject, app: Application, entry_points: dict | None = None) -> tuple[float, list[str]]:
    reasons, level = [], 0.0
    if obj.pod_spec is None:
        return 0.0, []
    for service, selector, why in (entry_points if entry_points is not None else _entry_points(app)).get(obj.namespace, []):
        if selector.matches(obj.pod_labels):
            reasons.append(why)
            level = 1.0
    if obj.pod_spec.get("hostNetwork") is True:
        reasons.append("hostNetwork")
        level = max(level, 0.5)
    if any(c.security_context.get("privileged") is True for c in obj.containers):
        reasons.append("privileged container")
        level = max(level, 0.5)
    return level, reasons


def _entry_points(app: Application) -> dict[str, list]:
    """Per namespace: the Services reachable from outside (LoadBalancer,
    NodePort, or behind an Ingress), with their selectors. Only these can
    expose a workload, so each workload is matched against a handful."""
    points: dict[str, list] = {}
    for service in app.find("v1", "Service"):
        spec = service.data.get("spec") or {}
        selector = spec.get("selector")
        if not isinstance(selector, dict) or not selector:
            continue
        reasons = [f"Service {service.name} ({spec.get('type')})"] if spec.get("type") in EXPOSED_SERVICE_TYPES else []
        reasons += [
            f"Ingress {ingress.name} -> Service {service.name}"
            for ingress in app.find("networking.k8s.io/v1", "Ingress", service.namespace)
            if service.name in _ingress_services(ingress.data)
        ]
        if not reasons:
            continue
        try:
            parsed = from_match_labels(selector)
        except SelectorError:
            continue
        points.setdefault(service.namespace, []).extend((service, parsed, why) for why in reasons)
    return points


def _ingress_services(data: dict) -> set[str]:
    spec = data.get("spec") or {}
    backends = [spec.get("defaultBackend") or {}]
    for rule in spec.get("rules") or []:
        backends += [p.get("backend") or {} for p in ((rule or {}).get("http") or {}).get("paths") or []]
    return {str((b.get("service") or {}).get("name")) for b in backends if isinstance(b, dict) and b.get("service")}
