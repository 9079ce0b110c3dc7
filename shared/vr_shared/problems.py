"""Problem details (RFC 9457): the one shape every error of the API takes, whether a route raised it or
a middleware answered before any route ran (vr_shared.web, vr_shared.limits)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error answered as problem+json. `extra` members are added to the document (e.g. `errors`)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.type = status, title, detail, type_
        self.headers = dict(headers or {})
        self.extra = extra


def problem_document(problem: Problem, instance: str | None = None) -> bytes:
    """The JSON body: type, title, status, detail when there is one, the path it is about, extras."""
    document: dict[str, Any] = {"type": problem.type, "title": problem.title, "status": problem.status}
    if problem.detail:
        document["detail"] = problem.detail
    if instance is not None:
        document["instance"] = instance
    document.update(problem.extra)
    return orjson.dumps(document)
