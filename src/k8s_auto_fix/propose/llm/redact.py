"""Secrets never leave the machine: redact before anything is sent.

What the model never sees (each value becomes a ``<redacted-N>`` placeholder):

- every value of a Secret's ``data`` and ``stringData``;
- annotations that embed whole objects (``kubectl.kubernetes.io/last-applied-configuration``
  and any annotation whose value is a JSON object or list, or spans lines) are
  dropped altogether: they repeat the object, secrets included;
- the value of any environment variable, ConfigMap key, annotation or other
  field whose name looks secret (password, pass, pwd, token, key, secret,
  credential, creds, auth, cert, dsn, database/db URL, connection string, ...);
- inside any string: URL userinfo (``postgres://u:<redacted>@host``), secret
  query parameters (``?password=``), ``key=value`` / ``key: value`` lines whose
  key looks secret (``app.properties``, ``.env`` files), command-line flags
  whose name looks secret and the value after them (``--db-password=...``,
  ``--api-key VALUE``), a MySQL client's ``-pPASSWORD``;
- any string that looks like a credential (private keys, bearer tokens, AWS,
  GitHub, Slack and Stripe keys, Slack webhook URLs, JWTs) or is a long
  high-entropy token (20+ characters from the base64 alphabet mixing upper
  case, lower case and digits, with more than 4 bits of entropy a character).

A model patch that writes a placeholder back is refused by the guards.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

# Names (of env vars, keys, flags) that say their value is secret. Broad on purpose: hiding too much costs the
# model some context, hiding too little leaks a credential.
SECRET_WORDS = r"secret|passw|passwd|pwd|(?<![a-z])pass(?![a-z])|token|api[_-]?key|private[_-]?key|access[_-]?key|(?<![a-z])key(?![a-z])|credential|(?<![a-z])creds?(?![a-z])|auth|cert|signing|dsn|(?:db|database)[_.-]?(?:url|uri)|conn(?:ection)?[_.-]?str|jdbc"  # noqa: E501
SECRET_NAME = re.compile(rf"(?i)({SECRET_WORDS})")
# Mapping keys that look secret but only name a structural field (a selector's key, the name of a Secret).
STRUCTURAL_KEYS = frozenset({"key", "secretName", "operator"})
CREDENTIAL_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|(?i:bearer\s+[a-z0-9._~+/-]{16,})"
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\b[rs]k_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|hooks\.slack\.com/(?:services|workflows)/\S+"
    r"|\bAIza[0-9A-Za-z_-]{30,}"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"
)
URL_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)([^/@\s:]*:[^/@\s]*|[^/@\s:]+)@")
SECRET_QUERY = re.compile(rf"(?i)([?&;](?:[\w.-]*(?:{SECRET_WORDS})[\w.-]*)=)([^&;#\s]+)")
SECRET_LINE = re.compile(rf"(?im)^(\s*[\w.\[\]-]*(?:{SECRET_WORDS})[\w.\[\]-]*\s*[=:]\s*)(\S.*?)\s*$")
SECRET_FLAG = re.compile(rf"(?i)((?<![\w-])--?[\w.-]*(?:{SECRET_WORDS})[\w.-]*)(=|\s+)(?!-)(\S+)")
SECRET_FLAG_ALONE = re.compile(rf"(?i)^--?[\w.-]*(?:{SECRET_WORDS})[\w.-]*$")
MYSQL_PASSWORD = re.compile(r"((?<![\w-])-p)([^\s-]\S*)")
MYSQL_CLIENTS = re.compile(r"(?i)\b(mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)\b")
TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{20,}")
EMBEDS_OBJECTS = ("kubectl.kubernetes.io/last-applied-configuration",)
PLACEHOLDER = "<redacted-{n}>"
PLACEHOLDER_PATTERN = re.compile(r"<redacted-\d+>")


@dataclass
class Redaction:
    """The redacted copy of an object, and what each placeholder stands for."""

    data: dict
    originals: dict[str, str] = field(default_factory=dict)


def redact(obj: dict) -> Redaction:
    return _Redactor().redact(obj)


class _Redactor:
    def __init__(self):
        self.result = Redaction({})
        self.count = 0

    def redact(self, obj: dict) -> Redaction:
        data = {}
        for key, value in obj.items():
            if obj.get("kind") == "Secret" and key in ("data", "stringData") and isinstance(value, dict):
                data[key] = {name: self.hide(item) for name, item in value.items()}
            else:
                data[key] = self.walk(value, str(key))
        self.result.data = data
        return self.result

    def hide(self, value: object) -> str:
        if isinstance(value, str) and PLACEHOLDER_PATTERN.fullmatch(value):
            return value  # already hidden
        self.count += 1
        token = PLACEHOLDER.format(n=self.count)
        self.result.originals[token] = str(value)
        return token

    def walk(self, node: object, key: str | None) -> object:
        if isinstance(node, dict):
            if key == "annotations":
                node = {k: v for k, v in node.items() if not _embeds_an_object(str(k), v)}
            return self.walk_mapping(node)
        if isinstance(node, list):
            return self.walk_list(node, key)
        if isinstance(node, str):
            return self.scrub(node, key)
        return node

    def walk_mapping(self, node: dict) -> dict:
        # An env var ({name, value}) is secret by its name; any other field by its key.
        env_like = isinstance(node.get("name"), str) and ("value" in node or "valueFrom" in node)
        secret_env = env_like and bool(SECRET_NAME.search(str(node.get("name", ""))))
        out = {}
        for k, v in node.items():
            if secret_env and k == "value" and v not in (None, ""):
                out[k] = self.hide(v)
            elif isinstance(v, str) and v and str(k) not in STRUCTURAL_KEYS and SECRET_NAME.search(str(k)):
                out[k] = self.hide(v)
            else:
                out[k] = self.walk(v, str(k))
        return out

    def walk_list(self, node: list, key: str | None) -> list:
        """A list of strings may be a command line: a secret flag's value is the next item."""
        mysql = any(isinstance(item, str) and MYSQL_CLIENTS.search(item) for item in node)
        out: list = []
        hide_next = False
        for item in node:
            if hide_next and isinstance(item, str) and not item.startswith("-"):
                out.append(self.hide(item))
            elif isinstance(item, str) and mysql:
                out.append(self.scrub(MYSQL_PASSWORD.sub(lambda m: m.group(1) + self.hide(m.group(2)), item), key))
            else:
                out.append(self.walk(item, key))
            hide_next = isinstance(item, str) and bool(SECRET_FLAG_ALONE.match(item))
        return out

    def scrub(self, text: str, key: str | None) -> str:
        """``text`` with every secret inside it replaced (the whole of it when it is a credential)."""
        if PLACEHOLDER_PATTERN.fullmatch(text):
            return text
        if CREDENTIAL_VALUE.search(text):
            return self.hide(text)
        text = URL_USERINFO.sub(lambda m: m.group(1) + self.hide(m.group(2)) + "@", text)
        text = SECRET_QUERY.sub(lambda m: m.group(1) + self.hide(m.group(2)), text)
        if "\n" in text:
            text = SECRET_LINE.sub(lambda m: m.group(1) + self.hide(m.group(2)), text)
        text = SECRET_FLAG.sub(lambda m: m.group(1) + m.group(2) + self.hide(m.group(3)), text)
        if MYSQL_CLIENTS.search(text):
            text = MYSQL_PASSWORD.sub(lambda m: m.group(1) + self.hide(m.group(2)), text)
        return TOKEN.sub(lambda m: self.hide(m.group(0)) if high_entropy(m.group(0)) else m.group(0), text)


def _embeds_an_object(name: str, value: object) -> bool:
    """An annotation that repeats an object (kubectl's last applied configuration, a
    JSON or multi-line YAML document): dropped, since it carries the object's secrets."""
    if name in EMBEDS_OBJECTS:
        return True
    text = str(value).strip() if value is not None else ""
    return text.startswith(("{", "[")) or "\n" in text


def high_entropy(token: str) -> bool:
    """A random-looking token: upper case, lower case and digits mixed, more than 4 bits a character.
    Hex digests and hostnames use too few kinds of character to count."""
    if len(token) < 20 or PLACEHOLDER_PATTERN.search(token):
        return False
    kinds = sum(any(test(c) for c in token) for test in (str.isupper, str.islower, str.isdigit))
    if kinds < 3:
        return False
    counts = Counter(token)
    bits = -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())
    return bits > 4.0


def mentions_placeholder(ops: list[dict]) -> bool:
    """True when a patch writes a placeholder (a redacted value) back."""
    return bool(PLACEHOLDER_PATTERN.search(repr([op.get("value") for op in ops])))
