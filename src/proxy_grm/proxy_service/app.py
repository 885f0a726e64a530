"""The FastAPI app: the release's reward endpoint, a batch endpoint, health, metrics, the image check,
auth and input checks (the routes are ``proxy_contract``'s; what each answers: the package docstring).

Every bad input is answered with a 4xx whose ``detail`` names the field (and
``errors`` lists each one); nothing a client sends can stop the server. The proxy
judges with ``proxy_prompt`` and reads its verdict with the release server's rule
(``<answer>`` span, else the last "1"/"2" in the critique).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from PIL import Image
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy_grm.images import ImageLoadError, load_image
from proxy_grm.messages import chat_messages
from proxy_grm.prompts import proxy_prompt
from proxy_grm.proxy_contract import (BATCH_PATH, CHECK_IMAGES_PATH, DEFAULT_MAX_NEW_TOKENS, HEALTH_PATH,
                                      MAX_BODY_BYTES, METRICS_PATH, REWARD_PATH, BatchRequest, RewardItem,
                                      RewardResult, judge)
from proxy_grm.proxy_service.backends import BackendConfig, ProxyBackend, load_backend
from proxy_grm.proxy_service.metrics import ServiceMetrics
from proxy_grm.proxy_service.schemas import HealthResponse, ImageCheckRequest, ImageCheckResponse, UnreadableImage

logger = logging.getLogger("proxy_grm.proxy")

OPEN_PATHS = frozenset({HEALTH_PATH, METRICS_PATH})
METERED_PATHS = frozenset({REWARD_PATH, BATCH_PATH, CHECK_IMAGES_PATH})  # others: "other"
CLIENT_LEFT_STATUS = 499  # nginx's "client closed request": logged and counted, never sent
MAX_ASPECT_RATIO = 200  # qwen_vl_utils.smart_resize refuses longer/shorter side ratios above this


@dataclass(frozen=True)
class ServiceConfig:
    backend: BackendConfig
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    api_key: str | None = None
    image_root: Path | None = None


def _field_name(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a readable field path: ('body', 'items', 3, 'rubric') -> items[3].rubric."""
    name = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _error(status: int, errors: list[dict[str, str]], headers: dict[str, str] | None = None) -> JSONResponse:
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return JSONResponse({"detail": detail, "errors": errors}, status_code=status, headers=headers)


def _validation_errors(error: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for item in error.errors():
        if item.get("type") == "json_invalid":
            cause = item.get("ctx", {}).get("error", "parse error")
            errors.append({"field": "body", "message": f"invalid JSON ({cause})"})
        else:
            message = item.get("msg", "invalid").removeprefix("Value error, ")
            errors.append({"field": _field_name(tuple(item.get("loc", ()))), "message": message})
    return errors


def _load_checked_image(ref: str, image_root: Path | None, field: str) -> Image.Image:
    """``load_image`` plus the one shape rule of Qwen-VL's resizing, so a bad image is a 422
    for its own request rather than a failed batch."""
    image = load_image(ref, image_root, field)
    ratio = max(image.size) / min(image.size)
    if ratio > MAX_ASPECT_RATIO:
        raise ImageLoadError(field, f"aspect ratio {ratio:.0f} is above {MAX_ASPECT_RATIO} (Qwen-VL cannot resize it)")
    return image


async def _load_images(items: list[RewardItem], image_root: Path | None, fields: list[str]) -> list[Image.Image]:
    return list(await asyncio.gather(
        *(asyncio.to_thread(_load_checked_image, item.image, image_root, field) for item, field in zip(items, fields))
    ))


class ClientLeft(Exception):
    """The caller closed its connection before its critiques were written."""


async def _disconnected(request: Request) -> None:
    """Returns when the client has closed the connection (the body is read: the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def score_for(request: Request, items: list[RewardItem], fields: list[str]) -> list[RewardResult]:
    """``score_items`` for one HTTP request; when its caller leaves first, the critiques are aborted.

    Cancelling the generation aborts the engine's requests (vLLM's ``AsyncLLM.generate`` aborts on
    cancellation; the transformers backend drops them from its queue), so a client that timed out and
    retried does not leave the proxy writing critiques nobody reads. Counted in ``aborted_critiques``.
    """
    work = asyncio.ensure_future(score_items(request.app, items, fields))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not work.done():
            work.cancel()
            request.app.state.metrics.aborted_critiques.inc(len(items))
    if not work.done() or work.cancelled():
        raise ClientLeft
    return work.result()


async def score_items(app: FastAPI, items: list[RewardItem], fields: list[str]) -> list[RewardResult]:
    """Judge every item with the proxy (all at once, through the backend's batching)."""
    config: ServiceConfig = app.state.config
    backend: ProxyBackend = app.state.backend
    images = await _load_images(items, config.image_root, fields)
    conversations = [
        chat_messages(proxy_prompt(item.question, item.chosen, item.rejected, item.rubric), image=image)
        for item, image in zip(items, images)
    ]
    metrics: ServiceMetrics = app.state.metrics
    metrics.pending_critiques.inc(len(conversations))
    try:
        critiques = await backend.generate(conversations, config.max_new_tokens)
    finally:
        metrics.pending_critiques.dec(len(conversations))
    results = [judge(critique, item.answer, item.id) for item, critique in zip(items, critiques, strict=True)]
    metrics.critiques.inc(len(results))
    metrics.truncated_critiques.inc(sum(result.truncated for result in results))
    return results


def _summary(results: list[RewardResult]) -> str:
    counts = Counter(str(r.verdict) if r.verdict is not None else "none" for r in results)
    return " ".join(f"verdict_{key}={counts[key]}" for key in sorted(counts))


class GuardAndLog:
    """Auth, content type and body size, checked before the body is read; one log line and the metrics per request.

    Plain ASGI rather than ``@app.middleware("http")``, which costs a task and a
    stream per request: under load the proxy should spend its CPU on the model.
    """

    def __init__(self, app: ASGIApp, api_key: str | None, metrics: ServiceMetrics):
        self.app = app
        self.api_key = api_key
        self.metrics = metrics

    def _reject(self, request: Request, state: dict[str, Any]) -> Response | None:
        if self.api_key is not None and request.url.path not in OPEN_PATHS:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(token.encode(), self.api_key.encode()):
                state.update(summary="error=unauthorized", error_kind="unauthorized")
                return _error(401, [{"field": "Authorization", "message": "missing or wrong bearer token"}],
                              {"WWW-Authenticate": "Bearer"})
        if request.method == "POST":
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                state.update(summary="error=content_type", error_kind="content_type")
                return _error(415, [{"field": "Content-Type",
                                     "message": f"expected application/json, got {media_type or 'none'!r}"}])
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > MAX_BODY_BYTES:
                state.update(summary="error=too_large", error_kind="too_large")
                return _error(413, [{"field": "body", "message": f"larger than {MAX_BODY_BYTES} bytes"}])
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:12]
        state = scope.setdefault("state", {})
        state.update(summary="", items=0, error_kind=None)
        started = time.monotonic()
        status = 0
        path = scope["path"]
        metered = path not in OPEN_PATHS

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        request = Request(scope)
        if metered:
            self.metrics.in_flight.inc()
        try:
            rejection = self._reject(request, state)
            if rejection is not None:
                await rejection(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except ClientLeft:
            status = status or CLIENT_LEFT_STATUS
            state.update(summary="client_left", error_kind="client_left")
        except Exception as error:  # noqa: BLE001 - a failed generation must not stop the server
            logger.exception("id=%s failed", request_id)
            state.update(summary=f"error={type(error).__name__}", error_kind="server_error")
            if status:
                raise
            failure = _error(500, [{"field": "server", "message": f"{type(error).__name__}: {error}"}])
            await failure(scope, receive, send_with_id)
        finally:
            if metered:
                self.metrics.in_flight.dec()
        if metered:
            latency_s = time.monotonic() - started
            self.metrics.observe(path if path in METERED_PATHS else "other", status, latency_s, state["error_kind"])
            logger.info("id=%s %s %s status=%d items=%d latency_ms=%.1f %s", request_id, request.method,
                        path, status, state["items"], latency_s * 1000, state["summary"])


def create_app(config: ServiceConfig,
               backend_loader: Callable[[BackendConfig], ProxyBackend] = load_backend) -> FastAPI:
    """The service; the model is loaded during start-up, before the port is bound."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = time.monotonic()
        try:
            app.state.backend = backend_loader(config.backend)
        except Exception as error:
            logger.error("cannot load %s with the %s backend: %s: %s", config.backend.model_path,
                         config.backend.backend, type(error).__name__, error)
            raise
        logger.info("loaded %s (%s backend) in %.1f s", config.backend.model_path, config.backend.backend,
                    time.monotonic() - started)
        yield
        app.state.backend.close()

    app = FastAPI(title="Proxy-GRM proxy agent", lifespan=lifespan)
    app.state.config = config
    app.state.metrics = metrics = ServiceMetrics()

    app.add_middleware(GuardAndLog, api_key=config.api_key, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(error)
        request.state.summary = f"error={errors[0]['field']}"
        request.state.error_kind = "invalid_request"
        return _error(422, errors)

    @app.exception_handler(ImageLoadError)
    async def on_image_error(request: Request, error: ImageLoadError) -> JSONResponse:
        request.state.summary = f"error={error.field}"
        request.state.error_kind = "bad_image"
        return _error(422, [{"field": error.field, "message": error.reason}])

    @app.get(HEALTH_PATH)
    async def health() -> HealthResponse:
        """Loaded model and backend, and the critique counts since start-up (the reward client's liveness signal)."""
        return HealthResponse(status="ok", model=str(config.backend.model_path), backend=app.state.backend.name,
                              max_new_tokens=config.max_new_tokens, critiques=metrics.count("critiques"),
                              truncated_critiques=metrics.count("truncated_critiques"),
                              pending_critiques=metrics.gauge("pending_critiques"),
                              aborted_critiques=metrics.count("aborted_critiques"))

    @app.get(METRICS_PATH)
    async def prometheus_metrics() -> Response:
        """Prometheus text format (see ``metrics``); open like ``/health``: counts only, never a critique."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.post(CHECK_IMAGES_PATH)
    async def check_images(request_body: ImageCheckRequest) -> ImageCheckResponse:
        """Which of these references this node cannot read (the trainer's paths must resolve here too)."""

        def reason(ref: str) -> str | None:
            try:  # the reward endpoints' own loader: an image passes here exactly when a reward call takes it
                _load_checked_image(ref, config.image_root, "image")
            except ImageLoadError as error:
                return error.reason
            return None

        reasons = await asyncio.gather(*(asyncio.to_thread(reason, ref) for ref in request_body.images))
        return ImageCheckResponse(unreadable=[UnreadableImage(image=ref, reason=why)
                                              for ref, why in zip(request_body.images, reasons) if why])

    @app.post(REWARD_PATH)
    async def get_reward_mllm(item: RewardItem, request: Request) -> dict[str, Any]:
        """The release's endpoint: one item in, ``{"reward", "verdict", "critique", "truncated"}`` out."""
        request.state.items = 1
        results = await score_for(request, [item], ["image"])
        request.state.summary = _summary(results)
        return results[0].to_json()

    @app.post(BATCH_PATH)
    async def get_reward_mllm_batch(batch: BatchRequest, request: Request) -> dict[str, Any]:
        """Many items in one request; results in request order."""
        request.state.items = len(batch.items)
        fields = [f"items[{index}].image" for index in range(len(batch.items))]
        results = await score_for(request, batch.items, fields)
        request.state.summary = _summary(results)
        return {"results": [result.to_json() for result in results]}

    return app
