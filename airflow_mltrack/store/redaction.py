"""Which values are secrets, and how they are hidden: one :class:`RedactionPolicy`, given to the store
(``TrackingStore(engine, redaction=...)``), which applies it to every write of hyperparameters, job
parameters and error texts; the UI applies the same policy before a read is shown. No Airflow imports: the
hook builds the policy from Airflow's ``[core] sensitive_var_conn_names`` and its secrets masker
(docs/architecture.md, docs/ui.md "Secrets").

The policy:

- A key is split into words (``dbPassword``, ``db-password``, ``DB_PASSWORD`` -> ``db password``;
  ``AWSSecretAccessKey`` -> ``aws secret access key``; see :func:`normalize_key`). It is secret when a
  sensitive name is a whole word run of it (``hf_token`` yes, ``tokenizer`` and ``max_tokens`` no), or when
  it contains a name the admin listed in ``sensitive_var_conn_names`` (matched anywhere, as Airflow
  matches them).
- Every value under a secret key is hidden, at any depth: strings, numbers and booleans (``null`` stays).
- In other strings, the password of a URL (``postgresql://user:pw@host``), a ``key=value`` / ``key: value``
  pair whose key is secret, a ``Bearer`` token and well-known token formats are hidden
  (:func:`redact_text`); this is also what hides secrets in an error message. A policy's ``text_masker``
  (Airflow's secrets masker, in the hook's policy) then masks what else it knows to be secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

REDACTED = "***"

#: Sensitive names, matched as whole word runs of a normalised key (Airflow's default list and more).
SECRET_NAMES = frozenset(
    {
        # Airflow's secrets masker defaults
        "access_key",
        "access_token",
        "api_key",
        "apikey",
        "auth_header",
        "authorization",
        "bearer",
        "connection_string",
        "dsn",
        "keyfile_dict",
        "passphrase",
        "passwd",
        "password",
        "private_key",
        "proxies",
        "proxy",
        "proxy_password",
        "secret",
        "service_account",
        "service_key",
        "token",
        "webhook_url",
        # and what hyperparameters call their secrets too
        "auth",
        "credential",
        "credentials",
        "client_secret",
        "cookie",
        "passcode",
        "passwords",
        "pwd",
        "secret_key",
        "secrets",
        "session_key",
        "signing_key",
        "ssh_key",
        "encryption_key",
    }
)

_CAMEL_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def normalize_key(name: str) -> str:
    """``AWSSecretAccessKey`` -> ``aws_secret_access_key``; ``db-Password`` -> ``db_password``."""
    spaced = _CAMEL.sub(r"\1_\2", _CAMEL_ACRONYM.sub(r"\1_\2", name.strip()))
    return _NON_WORD.sub("_", spaced.lower()).strip("_")


@dataclass(frozen=True)
class RedactionPolicy:
    """Which keys are secret and how secrets are hidden (see the module docstring).

    ``sensitive_names``: extra names (lower-case) that make a key secret wherever they occur in it (Airflow's
    ``[core] sensitive_var_conn_names``); ``text_masker``: applied to every shown string after the
    policy's own masking (Airflow's secrets masker, which knows the secrets fetched in this process);
    ``enabled`` False (:data:`NO_REDACTION`): values pass as given (to write rows as a version before
    redaction did, for tests of the read side).
    """

    sensitive_names: frozenset[str] = frozenset()
    text_masker: Callable[[str], str] | None = None
    enabled: bool = True

    @classmethod
    def from_names(
        cls, names: Iterable[str] | str | None, text_masker: Callable[[str], str] | None = None
    ) -> RedactionPolicy:
        """A policy with ``names`` (a list, or the comma-separated text of ``sensitive_var_conn_names``)."""
        if isinstance(names, str):
            names = names.split(",")
        return cls(frozenset(n.strip().lower() for n in names or () if n and n.strip()), text_masker)

    def is_secret_key(self, name: Any) -> bool:
        """True for a key whose value is hidden: ``password``, ``dbPassword``, ``openaiApiKey``, ``pwd``,
        ``ssh_key``, ``credentials``, ``hf_token``... (not ``tokenizer``, ``max_tokens``, ``keyboard``)."""
        if not isinstance(name, str) or not name.strip():
            return False
        normalized = normalize_key(name)
        words = f"_{normalized}_"
        if any(f"_{field}_" in words for field in SECRET_NAMES):
            return True
        # Glued words (``openaiapikey``, ``dbpassword``): the longer names inside them, never ``pin``/``auth``.
        glued = normalized.replace("_", "")
        if any(field in glued for field in ("password", "passwd", "apikey", "secretkey", "accesskey")):
            return True
        flat = name.strip().lower()
        return any(field in flat or field in normalized for field in self.sensitive_names)

    def redact_text(self, text: Any) -> Any:
        """Free text (an error message) with its secrets hidden (:func:`redact_text`, then the masker)."""
        if not isinstance(text, str) or not self.enabled:
            return text
        return self._mask(redact_text(text, self.is_secret_key))

    def redact(self, value: Any, name: Any = None) -> Any:
        """``value`` with every value under a secret key hidden and secrets inside other strings masked."""
        if not self.enabled:
            return value
        if name is not None and self.is_secret_key(name):
            return _hide_all(value)
        if isinstance(value, Mapping):
            return {k: self.redact(v, k) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact(v) for v in value]
        if isinstance(value, str):
            return self.redact_text(value)
        return value

    def redact_json(self, value: Any) -> Any:
        """Hyperparameters or job parameters (a dict, or its JSON text) redacted as a dict; anything else
        as given, for the store's checks to refuse with a clear error."""
        if not self.enabled:
            return value
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except (ValueError, RecursionError):
                return value
            return self.redact(parsed) if isinstance(parsed, Mapping) else value
        if isinstance(value, Mapping):
            return self.redact(value)
        return value

    def reveals_hidden(self, value: Any, name: Any = None) -> bool:
        """True if a filter on ``value`` (under ``name``) would test a hidden value: a secret key at any
        depth, or a string that :meth:`redact_text` would change (or that is ``***`` itself)."""
        if name is not None and self.is_secret_key(name):
            return True
        if isinstance(value, Mapping):
            return any(self.reveals_hidden(v, k) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(self.reveals_hidden(v) for v in value)
        if isinstance(value, str):
            return REDACTED in value or self.redact_text(value) != value
        return False

    def _mask(self, text: str) -> str:
        if self.text_masker is None or text == REDACTED:
            return text
        return self.text_masker(text)


#: The policy of a store given none: the sensitive names above, no extra masker (safe by default).
DEFAULT_POLICY = RedactionPolicy()
#: Nothing hidden: rows written as a version before store-side redaction wrote them (tests of the read side).
NO_REDACTION = RedactionPolicy(enabled=False)


def _hide_all(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: _hide_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hide_all(v) for v in value]
    return REDACTED


# -- secrets inside free text ---------------------------------------------------------------------
# A scheme starts after a non-letter (as the leftmost match always did): one scan of a long word, not one
# per letter of it (10 MB of "x" took hours).
_URL_PASSWORD = re.compile(
    r"(?P<head>(?<![A-Za-z])[A-Za-z][A-Za-z0-9+.\-]*://[^\s/@:?#]*:)(?P<secret>[^\s@/?#]+)(?=@)"
)
_BEARER = re.compile(r"(?P<head>\b(?:Bearer|Basic|Token)\s+)(?P<secret>[A-Za-z0-9._~+/=\-]{8,})", re.I)
_KEY_SEP = re.compile(r"(?P<key>[\"']?\b[A-Za-z_][A-Za-z0-9_.\-]*[\"']?)(?P<sep>\s*[=:]\s*)")
_VALUE = re.compile(r"(?:Bearer|Basic|Token)\s+\S+|\"[^\"]*\"|'[^']*'|[^\s,;&}\]\)]+", re.I)
_TOKEN_FORMATS = re.compile(
    r"\b(?:sk-[A-Za-z0-9_\-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|AKIA[0-9A-Z]{16}|hf_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9\-]{10,}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})"
)


def _mask_pairs(text: str, is_secret: Callable[[str], bool]) -> str:
    """``password=hunter2``, ``"apiKey": "abc"``, ``Authorization: Bearer ...``: the value of each pair whose
    key is secret replaced by ``***`` (quotes kept)."""
    out: list[str] = []
    pos = 0
    for match in _KEY_SEP.finditer(text):
        if match.start() < pos or not is_secret(match.group("key").strip("\"'")):
            continue
        value = _VALUE.match(text, match.end())
        if value is None or value.group(0).strip("\"'") == REDACTED:
            continue
        raw = value.group(0)
        quote = raw[0] if raw[:1] in ("'", '"') and len(raw) > 1 and raw[-1] == raw[0] else ""
        out += [text[pos : match.end()], quote, REDACTED, quote]
        pos = value.end()
    out.append(text[pos:])
    return "".join(out)


def redact_text(text: Any, is_secret: Callable[[str], bool] | None = None) -> Any:
    """``text`` (an error message, a hyperparameter string) with the secrets in it replaced by ``***``:
    URL passwords, ``password=...`` / ``"api_key": "..."`` pairs (``is_secret`` decides the keys; default:
    :data:`DEFAULT_POLICY`'s), ``Bearer`` tokens, well-known token formats (``sk-...``, ``ghp_...``,
    ``AKIA...``, ``hf_...``, JWTs). Anything but a string is returned as given."""
    if not isinstance(text, str) or not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group("head") + REDACTED, text)
    text = _mask_pairs(text, is_secret or DEFAULT_POLICY.is_secret_key)
    return _TOKEN_FORMATS.sub(REDACTED, text)


__all__ = [
    "DEFAULT_POLICY",
    "NO_REDACTION",
    "REDACTED",
    "SECRET_NAMES",
    "RedactionPolicy",
    "normalize_key",
    "redact_text",
]
