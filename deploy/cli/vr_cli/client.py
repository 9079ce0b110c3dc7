"""The HTTP client every command uses: API key, base URL, patient retries on 429 and 503, and one
clear line when the gateway cannot be reached."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt

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


class Unreachable(ApiError):
    """The gateway did not answer at all (wrong URL, nothing listening, the network): one clear line."""

    def __init__(self, url: str, error: httpx.TransportError) -> None:
        Exception.__init__(self, f"cannot reach {url}: {type(error).__name__} ({error or 'no answer'})")
        self.status_code = 0


class Api:
    """Retries 429 and 503 as the server's `Retry-After` says (tenacity: a maintained retry library;
    a capped exponential wait when the answer names none), up to `retries` times."""

    def __init__(
        self, url: str, key: str | None, *, retries: int = 8, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._url = url
        self._http = httpx.Client(base_url=url, headers=headers, timeout=60)
        self._retrying = Retrying(
            retry=retry_if_result(lambda response: response.status_code in RETRYABLE),
            wait=_retry_after,
            stop=stop_after_attempt(retries + 1),
            sleep=sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            reraise=True,
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer, after waiting out 429/503 as told; Unreachable when nothing answers."""
        try:
            response: httpx.Response = self._retrying(self._http.request, method, path, **kwargs)
        except httpx.TransportError as error:
            raise Unreachable(self._url, error) from None
        return response

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 202), **kwargs: Any) -> Any:
        """The JSON answer, or ApiError naming the status and the problem's fields."""
        response = self.send(method, path, **kwargs)
        if response.status_code not in ok:
            raise ApiError(response)
        return response.json()

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


def _retry_after(state: RetryCallState) -> float:
    response = state.outcome.result() if state.outcome and not state.outcome.failed else None
    try:
        return max(0.0, float(response.headers.get("retry-after", ""))) if response is not None else 1.0
    except ValueError:
        return min(30.0, 0.5 * 2.0**state.attempt_number)
