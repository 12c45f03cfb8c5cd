"""Threat feeds, read from local files: FIRST EPSS, CISA KEV, Trivy reports.

`risk feeds fetch` downloads EPSS and KEV when online (conditional requests,
atomic writes); everything else works offline from files in the real formats.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

EPSS_URL = "https://epss.cyentia.com/epss_scores-current.csv.gz"
KEV_URL = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"


class FeedError(Exception):
    pass


def read_epss(path: Path) -> dict[str, float]:
    """CVE -> EPSS probability. FIRST's CSV starts with a ``#model_version``
    comment line, then ``cve,epss,percentile``; plain or gzip."""
    try:
        raw = path.read_bytes()
        text = gzip.decompress(raw).decode("utf-8") if raw[:2] == b"\x1f\x8b" else raw.decode("utf-8")
    except (OSError, gzip.BadGzipFile, UnicodeDecodeError, EOFError) as err:
        raise FeedError(f"{path}: cannot read EPSS file: {err}") from None
    rows = csv.DictReader(line for line in io.StringIO(text) if not line.startswith("#"))
    if not {"cve", "epss"} <= set(rows.fieldnames or ()):
        raise FeedError(f"{path}: expected EPSS columns cve,epss,percentile, found {rows.fieldnames}")
    scores: dict[str, float] = {}
    number = 1
    try:
        for number, row in enumerate(rows, 2):
            scores[row["cve"].strip().upper()] = float(row["epss"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise FeedError(f"{path}:{number}: expected EPSS columns cve,epss,percentile") from None
    return scores


def read_kev(path: Path) -> set[str]:
    """CVE ids in CISA's Known Exploited Vulnerabilities catalogue (JSON)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(v["cveID"]).upper() for v in data["vulnerabilities"]}
    except (OSError, UnicodeDecodeError) as err:
        raise FeedError(f"{path}: cannot read KEV file: {err}") from None
    except json.JSONDecodeError as err:
        raise FeedError(f"{path}:{err.lineno}: invalid JSON in KEV file") from None
    except (KeyError, TypeError):
        raise FeedError(f"{path}: not a KEV catalogue (expected vulnerabilities[].cveID)") from None


@dataclass
class ImageVulns:
    cves: set[str] = field(default_factory=set)


def read_trivy(path: Path) -> dict[str, ImageVulns]:
    """Image reference -> its CVEs, from a `trivy image --format json` report."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise FeedError(f"{path}: cannot read Trivy report: {err}") from None
    except json.JSONDecodeError as err:
        raise FeedError(f"{path}:{err.lineno}: invalid JSON in Trivy report") from None
    if not isinstance(data, dict) or "ArtifactName" not in data:
        raise FeedError(f"{path}: not a Trivy JSON report (no ArtifactName)")
    vulns = ImageVulns()
    for result in data.get("Results") or []:
        for vuln in (result or {}).get("Vulnerabilities") or []:
            if isinstance(vuln, dict) and vuln.get("VulnerabilityID"):
                vulns.cves.add(str(vuln["VulnerabilityID"]).upper())
    return {normalise_image(data["ArtifactName"]): vulns}


def normalise_image(image: str) -> str:
    """docker.io/library/nginx:latest and nginx:latest are the same image; no tag means latest."""
    image = image.strip()
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if image.startswith(prefix):
            image = image[len(prefix) :]
    if "@" not in image and ":" not in image.rsplit("/", 1)[-1]:
        image += ":latest"
    return image


FEEDS = ((EPSS_URL, "epss.csv.gz"), (KEV_URL, "kev.json"))


def fetch_feeds(folder: Path, timeout: float = 30.0, sources=FEEDS) -> list[Path]:
    """Download EPSS and KEV into ``folder`` (only when changed upstream)."""
    import httpx

    written = []
    for url, name in sources:
        target = folder / name
        meta = target.with_suffix(target.suffix + ".etag")
        headers = {}
        if target.exists() and meta.exists():
            headers["If-None-Match"] = meta.read_text().strip()
        try:
            response = httpx.get(url, headers=headers, timeout=timeout, follow_redirects=True)
        except httpx.HTTPError as err:
            raise FeedError(f"cannot download {url} (offline?): {err}; pass local files with --epss-csv/--kev-json") from None
        if response.status_code == 304:
            written.append(target)
            continue
        if response.status_code != 200:
            raise FeedError(f"{url}: HTTP {response.status_code}")
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
        with os.fdopen(fd, "wb") as handle:
            handle.write(response.content)
        os.replace(tmp, target)
        if response.headers.get("ETag"):
            meta.write_text(response.headers["ETag"])
        written.append(target)
    return written
