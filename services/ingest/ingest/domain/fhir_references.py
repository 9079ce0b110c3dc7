"""References between the resources of a FHIR R4 Bundle, resolved as the Bundle rules say (R4 Bundle,
"Resolving references in Bundles"), and what a reference names by itself when its target is elsewhere.

Pure. The forms, and where each resolves:
- `#id`: a resource `contained` in the one that refers to it — or, written in a contained resource, a
  sibling in its container (`#` alone: the container);
- an absolute URL or a `urn:uuid:` / `urn:oid:`: the entry whose `fullUrl` it is (a version-specific
  `…/_history/n` names the same entry);
- `Type/id`: against the base of the referring entry's RESTful `fullUrl`
  (`http://example.org/fhir/Observation/1` refers by `Patient/7` to `http://example.org/fhir/Patient/7`,
  and to nothing else: never to `Patient/7` of another server); written in an entry without a RESTful
  base, the one entry of that type and id (several: ambiguous, unresolved);
- a conditional reference `Type?identifier=system|value` (the search forms `value` — any system —
  and `|value` — none — too): the one entry of that type with that identifier, or whose
  `request.url` / `request.ifNoneExist` states that condition.

A `#id` or `urn:` reference that resolves to nothing names nothing at all (only the Bundle gives it a
meaning); the other forms still name a type, and an id or an identifier value, by themselves.

The work is linear in the Bundle: each entry's base and each holder's contained resources are indexed
once, and a `fullUrl` longer than `MAX_URL` is not indexed (the mapping refuses that entry).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
MAX_URL = 4096  # characters of a fullUrl; real ones are a few dozen
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
        self._by_type_id: dict[str, dict[int, Resource]] = {}
        self._by_condition: dict[Condition, dict[int, Resource]] = {}
        self._base_of: dict[int, str] = {}  # id(resource) → the RESTful base of its entry's fullUrl
        # id(holder) → (holder, its contained resources by id); id(contained) → its container. The
        # holder is kept with its index so that its id() cannot be reused while the index lives.
        self._contained: dict[int, tuple[Resource, dict[str, Resource]]] = {}
        self._container_of: dict[int, Resource] = {}
        for entry in entries:
            resource = entry.get("resource")
            if isinstance(resource, Mapping):
                self._add(entry, resource)

    def _add(self, entry: Mapping[str, Any], resource: Resource) -> None:
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and 0 < len(full_url) <= MAX_URL:
            self._by_full_url.setdefault(_without_history(full_url), resource)
            if (match := RESTFUL_URL.fullmatch(full_url)) is not None:
                self._base_of[id(resource)] = match["base"]
        kind, id_ = resource.get("resourceType"), resource.get("id")
        if not isinstance(kind, str):
            return
        if isinstance(id_, str) and id_:
            self._by_type_id.setdefault(f"{kind}/{id_}", {})[id(resource)] = resource
        for condition in _conditions_met(kind, resource, entry.get("request")):
            self._by_condition.setdefault(condition, {})[id(resource)] = resource

    def resolve(self, reference: str, holder: Resource | None = None) -> Resource | None:
        """The resource `reference` (written in `holder`) names in this Bundle, or None."""
        if reference.startswith("#"):
            return self._contained_in(holder, reference[1:])
        if "?" in reference:
            return _only(self._by_condition.get(_condition(reference), {}))  # several: ambiguous
        reference = _without_history(reference)
        if reference in self._by_full_url or "://" in reference or is_local(reference):
            return self._by_full_url.get(reference)
        root = self._container_of.get(id(holder), holder) if holder is not None else None
        base = self._base_of.get(id(root)) if root is not None else None
        if base is not None:  # a RESTful entry's relative reference means its own server's resource
            return self._by_full_url.get(f"{base}/{reference}")
        return _only(self._by_type_id.get(reference, {}))

    def _contained_in(self, holder: Resource | None, id_: str) -> Resource | None:
        """`#id` written in `holder`: its own contained resource — or, when `holder` is itself contained,
        its container's (FHIR: contained resources refer to their siblings through the container)."""
        if holder is None:
            return None
        root = self._container_of.get(id(holder), holder)
        if not id_:
            return root  # `#`: the container itself
        return self._contained_of(root).get(id_)

    def _contained_of(self, holder: Resource) -> dict[str, Resource]:
        known = self._contained.get(id(holder))
        if known is not None:
            return known[1]
        by_id: dict[str, Resource] = {}
        contained = holder.get("contained")
        for resource in contained if isinstance(contained, list) else []:
            if isinstance(resource, Mapping) and isinstance(id_ := resource.get("id"), str):
                by_id.setdefault(id_, resource)
                self._container_of[id(resource)] = holder
        self._contained[id(holder)] = (holder, by_id)
        return by_id


def _only(matches: Mapping[int, Resource]) -> Resource | None:
    return next(iter(matches.values())) if len(matches) == 1 else None


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
