"""The HTTP client every command uses: API key, base URL, and patient retries on 429 and 503."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

RETRYABLE = (429, 503)


class ApiError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        try:
            problem = response.json()
            detail = problem.get("detail") or problem.get("title")
            errors = problem.get("errors")
        except ValueError:
            detail, errors = response.text[:500], None
        message = f"{response.request.method} {response.request.url.path} → {response.status_code}: {detail}"
        if errors:
            message += "".join(f"\n  {e.get('path')}: {e.get('message')}" for e in errors[:20])
        super().__init__(message)
        self.status_code = response.status_code


class Api:
    def __init__(
        self, url: str, key: str | None, *, retries: int = 8, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=60)
        self._retries, self._sleep = retries, sleep

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 202), **kwargs: Any) -> Any:
        """The JSON answer; waits as the server's Retry-After says on 429/503, up to `retries` times."""
        for attempt in range(self._retries + 1):
            response = self._http.request(method, path, **kwargs)
            if response.status_code in RETRYABLE and attempt < self._retries:
                self._sleep(_retry_after(response, attempt))
                continue
            if response.status_code not in ok:
                raise ApiError(response)
            return response.json()
        raise AssertionError("unreachable")  # pragma: no cover

    def items(self, path: str, params: list[tuple[str, str]] | None = None) -> list[Any]:
        """Every item of a list, page after page (`next` → `?after=`)."""
        found: list[Any] = []
        after: list[tuple[str, str]] = []
        while True:
            answer = self.call("GET", path, params=[*(params or []), *after])
            found.extend(answer["items"])
            if not answer.get("next"):
                return found
            after = [("after", answer["next"])]


def _retry_after(response: httpx.Response, attempt: int) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return min(30.0, 0.5 * 2.0**attempt)
