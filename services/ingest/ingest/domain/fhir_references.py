"""References between the resources of a FHIR R4 Bundle, resolved as the Bundle rules say (R4 Bundle,
"Resolving references in Bundles"), and what a reference names by itself when its target is elsewhere.

Pure. The forms, and where each resolves:
- `#id`: a resource `contained` in the one that refers to it;
- an absolute URL or a `urn:uuid:` / `urn:oid:`: the entry whose `fullUrl` it is (a version-specific
  `…/_history/n` names the same entry);
- `Type/id`: against the base of the referring entry's RESTful `fullUrl`
  (`http://example.org/fhir/Observation/1` refers by `Patient/7` to `http://example.org/fhir/Patient/7`),
  else the entry of that type and id;
- a conditional reference `Type?identifier=system|value` (the search forms `value` — any system —
  and `|value` — none — too): the one entry of that type with that identifier, or whose
  `request.url` / `request.ifNoneExist` states that condition.

A `#id` or `urn:` reference that resolves to nothing names nothing at all (only the Bundle gives it a
meaning); the other forms still name a type, and an id or an identifier value, by themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
RESTFUL_URL = re.compile(
    r"(?P<base>https?://[^?#]+?)/(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)

Resource = Mapping[str, Any]
Condition = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class Named:
    """What a reference says of its target without resolving it: the resource type and the id (or the
    identifier value of a conditional reference), each None when the reference does not say."""

    kind: str | None
    name: str | None


def named_by(reference: str) -> Named:
    if is_local(reference):
        return Named(None, None)
    if "?" in reference:
        kind, query = reference.split("?", 1)
        values = [value for key, value in parse_qsl(query) if key == "identifier"]
        name = values[0].rsplit("|", 1)[-1] if values else None
        return Named(kind if RESOURCE_TYPE.fullmatch(kind) else None, name or None)
    segments = reference.split("#", 1)[0].split("/")
    if "_history" in segments:
        segments = segments[: segments.index("_history")]
    if len(segments) >= 2 and RESOURCE_TYPE.fullmatch(segments[-2]) and segments[-1]:
        return Named(segments[-2], segments[-1])
    return Named(None, None)


def is_local(reference: str) -> bool:
    """A reference only the Bundle (or the resource holding it) gives a meaning to."""
    return reference.startswith(("#", "urn:uuid:", "urn:oid:"))


class BundleIndex:
    """The resources of a Bundle, by every way an entry may be referenced."""

    def __init__(self, entries: Iterable[Mapping[str, Any]] = ()) -> None:
        self._by_full_url: dict[str, Resource] = {}
        self._by_type_id: dict[str, Resource] = {}
        self._by_condition: dict[Condition, dict[int, Resource]] = {}
        self._full_url_of: dict[int, str] = {}  # id(resource) → its entry's fullUrl
        for entry in entries:
            resource = entry.get("resource")
            if isinstance(resource, Mapping):
                self._add(entry, resource)

    def _add(self, entry: Mapping[str, Any], resource: Resource) -> None:
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and full_url:
            self._by_full_url.setdefault(_without_history(full_url), resource)
            self._full_url_of[id(resource)] = full_url
        kind, id_ = resource.get("resourceType"), resource.get("id")
        if not isinstance(kind, str):
            return
        if isinstance(id_, str) and id_:
            self._by_type_id.setdefault(f"{kind}/{id_}", resource)
        for condition in _conditions_met(kind, resource, entry.get("request")):
            self._by_condition.setdefault(condition, {})[id(resource)] = resource

    def resolve(self, reference: str, holder: Resource | None = None) -> Resource | None:
        """The resource `reference` (written in `holder`) names in this Bundle, or None."""
        if reference.startswith("#"):
            return _contained(holder, reference[1:])
        if "?" in reference:
            matches = self._by_condition.get(_condition(reference), {})
            return next(iter(matches.values())) if len(matches) == 1 else None  # several: ambiguous
        reference = _without_history(reference)
        if reference in self._by_full_url or "://" in reference or is_local(reference):
            return self._by_full_url.get(reference)
        base = self._base_of(holder)
        if base is not None and (found := self._by_full_url.get(f"{base}/{reference}")) is not None:
            return found
        return self._by_type_id.get(reference)

    def _base_of(self, holder: Resource | None) -> str | None:
        full_url = self._full_url_of.get(id(holder)) if holder is not None else None
        match = RESTFUL_URL.fullmatch(full_url) if full_url else None
        return match["base"] if match else None


def _contained(holder: Resource | None, id_: str) -> Resource | None:
    contained = holder.get("contained") if holder is not None else None
    for resource in contained if isinstance(contained, list) else []:
        if isinstance(resource, Mapping) and resource.get("id") == id_:
            return resource
    return None


def _without_history(url: str) -> str:
    return url.split("/_history/", 1)[0] if "/_history/" in url else url


def _condition(reference: str) -> Condition:
    kind, query = reference.split("?", 1)
    return kind, tuple(sorted(parse_qsl(query, keep_blank_values=True)))


def _conditions_met(kind: str, resource: Resource, request: Any) -> Iterable[Condition]:
    """The conditional references that name this entry: by each identifier, and by the condition its
    request states (a conditional create's `ifNoneExist`, a conditional update's `url`)."""
    identifiers = resource.get("identifier")
    for identifier in identifiers if isinstance(identifiers, list) else []:
        value = identifier.get("value") if isinstance(identifier, Mapping) else None
        if not isinstance(value, str) or not value:
            continue
        system = identifier.get("system")
        system = system if isinstance(system, str) else ""
        for token in (f"{system}|{value}", value):  # `value` alone: an identifier of any system
            yield kind, (("identifier", token),)
    if isinstance(request, Mapping):
        if isinstance(url := request.get("url"), str) and url.startswith(f"{kind}?"):
            yield _condition(url)
        if isinstance(if_none_exist := request.get("ifNoneExist"), str) and if_none_exist:
            yield _condition(f"{kind}?{if_none_exist}")
