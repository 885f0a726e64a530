"""The proxy service as a real uvicorn subprocess on 127.0.0.1, for each backend, with the tiny model.

One server per backend serves the whole module; it runs with ``--api-key`` and
``--image-root`` so the auth and root rules are exercised on the same server as
the compat, batch, bad-input and load tests.
"""

from __future__ import annotations

import asyncio
import base64
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from helpers import REPO_ROOT, VLLM_PYTHON
from proxy_grm.images import image_to_data_uri
from proxy_grm.proxy_contract import MAX_BATCH_ITEMS, MAX_TEXT_CHARS
from proxy_grm.proxy_service.app import judge
from proxy_grm.proxy_service.backends import BatchingQueue
from proxy_grm.toy.servers import ServerProcess, free_port, vllm_env

PROXY_SCRIPT = REPO_ROOT / "proxy" / "proxy.py"
API_KEY = "test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MAX_NEW_TOKENS = 8

BACKENDS = [
    pytest.param("transformers"),
    pytest.param("vllm", marks=[pytest.mark.vllm, pytest.mark.slow]),
]


@dataclass
class Server:
    url: str
    backend: str
    image_root: Path
    process: ServerProcess

    def post(self, path: str, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers=AUTH if headers is None else headers, timeout=120)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("proxy-images")
    root = base / "root"
    root.mkdir()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(root / "wide.png")
    Image.new("RGB", (40, 90), (10, 200, 30)).save(root / "tall.jpg")
    Image.new("RGB", (300, 1)).save(root / "strip.png")
    (root / "notes.txt").write_text("not an image")
    Image.new("RGB", (16, 16)).save(base / "outside.png")
    os.symlink(base / "outside.png", root / "link.png")
    return root


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tiny_model_dir: Path, image_root: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    backend = request.param
    port = free_port()
    argv = [str(PROXY_SCRIPT), "--model-path", str(tiny_model_dir), "--backend", backend, "--port", str(port),
            "--max-new-tokens", str(MAX_NEW_TOKENS), "--api-key", API_KEY, "--image-root", str(image_root),
            "--dtype", "float32"]
    if backend == "vllm":
        if not VLLM_PYTHON.exists():
            pytest.fail(f"{VLLM_PYTHON} is missing: run `bash scripts/setup_env.sh vllm`")
        argv = [str(VLLM_PYTHON), *argv, "--max-model-len", "4096", "--enforce-eager"]
        env = vllm_env()
    else:
        argv = [sys.executable, *argv]
        env = dict(os.environ)
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp(f"proxy-{backend}") / "server.log"
    process = ServerProcess(argv, f"{url}/health", log, env)
    try:
        process.wait_healthy(timeout_s=300)
        yield Server(url, backend, image_root, process)
    finally:
        process.stop()


def item(**overrides: object) -> dict[str, object]:
    """The release's payload, valid unless overridden."""
    body: dict[str, object] = {
        "question": "What colour is the box?", "chosen": "It is red.", "rejected": "It is blue.",
        "image": "wide.png", "answer": "1", "rubric": "<rubric>1. Colour accuracy (100%)</rubric>",
    }
    body.update(overrides)
    return body


def assert_result(result: dict[str, object], answer: int) -> None:
    assert set(result) >= {"reward", "verdict", "critique"}
    assert result["verdict"] in (1, 2, None) and isinstance(result["critique"], str)
    assert result["reward"] == (1.0 if result["verdict"] == answer else -1.0)


# ---- pure pieces: the verdict rule and the batching queue -------------------------------------------

@pytest.mark.parametrize(
    ("critique", "answer", "verdict", "reward"),
    [
        ("<think>r</think><answer>1</answer>", 1, 1, 1.0),
        ("<think>r</think><answer>2</answer>", 1, 2, -1.0),
        ("<answer>1 or 2</answer>", 2, None, -1.0),
        ("Response 1 is worse, so Response 2.", 2, 2, 1.0),  # no <answer>: the last 1/2 counts
        ("no digit", 1, None, -1.0),
    ],
)
def test_judge_follows_the_release_rule(critique: str, answer: int, verdict: int | None, reward: float) -> None:
    result = judge(critique, answer)
    assert (result.verdict, result.reward, result.critique) == (verdict, reward, critique)


def test_batching_queue_groups_concurrent_requests() -> None:
    batch_sizes: list[int] = []

    def generate(batch: list[list[dict]], max_new_tokens: int) -> list[str]:
        batch_sizes.append(len(batch))
        time.sleep(0.05)
        return [f"{m[0]['content']}:{max_new_tokens}" for m in batch]

    async def run() -> list[str]:
        queue = BatchingQueue(generate, max_batch_size=8, batch_wait_ms=20)
        try:
            return await asyncio.gather(*(queue.submit([{"content": str(i)}], 4) for i in range(20)))
        finally:
            queue.close()

    assert asyncio.run(run()) == [f"{i}:4" for i in range(20)]
    assert sum(batch_sizes) == 20 and max(batch_sizes) == 8 and len(batch_sizes) <= 4


def test_batching_queue_hands_errors_to_every_waiter() -> None:
    def generate(batch: list[list[dict]], max_new_tokens: int) -> list[str]:
        raise RuntimeError("device lost")

    async def run() -> list[object]:
        queue = BatchingQueue(generate, max_batch_size=4, batch_wait_ms=5)
        try:
            return await asyncio.gather(*(queue.submit([], 4) for _ in range(3)), return_exceptions=True)
        finally:
            queue.close()

    assert all(isinstance(e, RuntimeError) and "device lost" in str(e) for e in asyncio.run(run()))


def test_batching_queue_isolates_a_failing_request() -> None:
    """A request that breaks its batch fails alone; the others batched with it still get answers."""

    def generate(batch: list[list[dict]], max_new_tokens: int) -> list[str]:
        if any(m[0]["content"] == "bad" for m in batch):
            raise ValueError("cannot render 'bad'")
        return [m[0]["content"].upper() for m in batch]

    async def run() -> list[object]:
        queue = BatchingQueue(generate, max_batch_size=8, batch_wait_ms=20)
        try:
            contents = ["a", "bad", "c"]
            return await asyncio.gather(*(queue.submit([{"content": c}], 4) for c in contents), return_exceptions=True)
        finally:
            queue.close()

    first, second, third = asyncio.run(run())
    assert (first, third) == ("A", "C") and isinstance(second, ValueError)


# ---- start-up ------------------------------------------------------------------------------------

@pytest.mark.parametrize("problem", ["missing", "not_a_checkpoint"])
def test_wrong_model_path_fails_fast_with_a_message(tmp_path: Path, problem: str) -> None:
    model_path = tmp_path / "missing" if problem == "missing" else tmp_path
    run = subprocess.run(
        [sys.executable, str(PROXY_SCRIPT), "--model-path", str(model_path), "--backend", "transformers",
         "--port", str(free_port())],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode != 0
    expected = "no such directory" if problem == "missing" else "no config.json"
    assert f"--model-path {model_path}: {expected}" in run.stderr


# ---- the running server --------------------------------------------------------------------------

def test_health_is_open_and_names_model_and_backend(server: Server, tiny_model_dir: Path) -> None:
    response = httpx.get(server.url + "/health")
    assert response.status_code == 200
    health = response.json()
    assert {k: health[k] for k in ("status", "model", "backend")} == {
        "status": "ok", "model": str(tiny_model_dir), "backend": server.backend}
    assert health["max_new_tokens"] == MAX_NEW_TOKENS and health["truncated_critiques"] <= health["critiques"]


def test_release_payload_gets_reward_verdict_critique(server: Server) -> None:
    for answer in ("1", "2", 1, 2):
        response = server.post("/get_reward_mllm", item(answer=answer, extra_release_field="ignored"))
        assert response.status_code == 200, response.text
        result = response.json()
        assert set(result) == {"reward", "verdict", "critique", "truncated"}  # no "id" unless the request sent one
        assert_result(result, int(answer))
        assert len(response.headers["X-Request-ID"]) == 12


def test_images_by_relative_path_absolute_path_and_data_uri(server: Server) -> None:
    data_uri = image_to_data_uri(Image.new("RGB", (30, 20), (0, 0, 255)))
    for image in ("tall.jpg", str(server.image_root / "tall.jpg"), data_uri):
        response = server.post("/get_reward_mllm", item(image=image))
        assert response.status_code == 200, response.text


def test_batch_endpoint_keeps_request_order_and_echoes_ids(server: Server) -> None:
    items = [item(id=f"req-{i}", answer=str(1 + i % 2), question=f"Question {i}?",
                  image="wide.png" if i % 2 else "tall.jpg") for i in range(6)]
    response = server.post("/get_reward_mllm_batch", {"items": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["id"] for r in results] == [f"req-{i}" for i in range(6)]
    for i, result in enumerate(results):
        assert_result(result, 1 + i % 2)
    single = server.post("/get_reward_mllm", items[3]).json()
    assert single["verdict"] == results[3]["verdict"] and single["reward"] == results[3]["reward"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}, {"Authorization": f"Basic {API_KEY}"}],
)
def test_requests_without_the_bearer_key_get_401(server: Server, headers: dict[str, str]) -> None:
    for path, body in (("/get_reward_mllm", item()), ("/get_reward_mllm_batch", {"items": [item()]})):
        response = server.post(path, body, headers=headers)
        assert response.status_code == 401
        assert "Authorization" in response.json()["detail"]
    assert httpx.get(server.url + "/health").status_code == 200


def test_paths_outside_the_image_root_are_refused(server: Server) -> None:
    outside = server.image_root.parent / "outside.png"
    for image in ("../outside.png", str(outside), "link.png"):
        response = server.post("/get_reward_mllm", item(image=image))
        assert response.status_code == 422 and response.json()["detail"].startswith("image: "), response.text
        assert "outside the image root" in response.json()["detail"]
    response = server.post("/get_reward_mllm_batch", {"items": [item(), item(image="../outside.png")]})
    assert response.status_code == 422 and response.json()["detail"].startswith("items[1].image: ")


def _malformed_requests(image_root: Path) -> list[tuple[str, str, dict[str, object], str]]:
    """(name, path, httpx request kwargs, field the message must name)."""
    single, batch = "/get_reward_mllm", "/get_reward_mllm_batch"
    without = {key: {k: v for k, v in item().items() if k != key} for key in ("question", "image", "answer")}
    bad_png = "data:image/png;base64," + base64.b64encode(b"definitely not a png").decode()
    cases: list[tuple[str, str, dict[str, object], str]] = [
        ("missing question", single, {"json": without["question"]}, "question"),
        ("missing image", single, {"json": without["image"]}, "image"),
        ("missing answer", single, {"json": without["answer"]}, "answer"),
        ("question is a number", single, {"json": item(question=7)}, "question"),
        ("chosen is null", single, {"json": item(chosen=None)}, "chosen"),
        ("rejected is a list", single, {"json": item(rejected=["a"])}, "rejected"),
        ("answer 3", single, {"json": item(answer="3")}, "answer"),
        ("answer 0", single, {"json": item(answer=0)}, "answer"),
        ("answer true", single, {"json": item(answer=True)}, "answer"),
        ("answer word", single, {"json": item(answer="first")}, "answer"),
        ("empty rubric", single, {"json": item(rubric="")}, "rubric"),
        ("blank rubric", single, {"json": item(rubric="  \n ")}, "rubric"),
        ("rubric is an object", single, {"json": item(rubric={"a": 1})}, "rubric"),
        ("oversized question", single, {"json": item(question="x" * (MAX_TEXT_CHARS + 1))}, "question"),
        ("oversized rubric", single, {"json": item(rubric="r" * (MAX_TEXT_CHARS + 1))}, "rubric"),
        ("empty image", single, {"json": item(image="")}, "image"),
        ("missing file", single, {"json": item(image="nope.png")}, "image"),
        ("non-image file", single, {"json": item(image="notes.txt")}, "image"),
        ("aspect ratio above 200", single, {"json": item(image="strip.png")}, "image"),
        ("path outside the root", single, {"json": item(image="../outside.png")}, "image"),
        ("bad base64", single, {"json": item(image="data:image/png;base64,@@@")}, "image"),
        ("base64 of a non-image", single, {"json": item(image=bad_png)}, "image"),
        ("http url", single, {"json": item(image="http://127.0.0.1:1/x.png")}, "image"),
        ("invalid JSON", single, {"content": b'{"question": ', "headers": {"Content-Type": "application/json"}},
         "body"),
        ("empty body", single, {"content": b"", "headers": {"Content-Type": "application/json"}}, "body"),
        ("JSON array", single, {"json": [item()]}, "body"),
        ("text/plain", single, {"content": b"question=hi", "headers": {"Content-Type": "text/plain"}},
         "Content-Type"),
        ("no content type", single, {"content": b"{}"}, "Content-Type"),
        ("form body", single, {"data": {"question": "hi"}}, "Content-Type"),
        ("batch without items", batch, {"json": {}}, "items"),
        ("batch items not a list", batch, {"json": {"items": item()}}, "items"),
        ("empty batch", batch, {"json": {"items": []}}, "items"),
        ("too many items", batch, {"json": {"items": [item()] * (MAX_BATCH_ITEMS + 1)}}, "items"),
        ("one bad item in a batch", batch, {"json": {"items": [item(), item(rubric="")]}}, "items[1].rubric"),
        ("one missing file in a batch", batch, {"json": {"items": [item(), item(image="gone.png")]}},
         "items[1].image"),
    ]
    return cases


def test_malformed_requests_get_4xx_naming_the_field(server: Server) -> None:
    cases = _malformed_requests(server.image_root)
    assert len(cases) >= 20
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for name, path, kwargs, field in cases:
            headers = {**AUTH, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
            response = client.post(path, headers=headers, **kwargs)  # type: ignore[arg-type]
            assert 400 <= response.status_code < 500, f"{name}: {response.status_code} {response.text[:300]}"
            detail = response.json()["detail"]
            assert detail.startswith(f"{field}") or f"; {field}" in detail, f"{name}: {detail[:300]}"
        assert client.get("/health").status_code == 200
        ok = client.post("/get_reward_mllm", json=item(), headers=AUTH)
        assert ok.status_code == 200, ok.text


def test_load_1000_requests_at_concurrency_64(server: Server) -> None:
    """Every reply comes back, none fails, and each matches its request (echoed id, answer-consistent reward)."""
    total, concurrency = 1000, 64
    images = ["wide.png", "tall.jpg"]

    async def run() -> tuple[list[float], list[str]]:
        latencies: list[float] = []
        errors: list[str] = []
        semaphore = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH, limits=limits, timeout=300) as client:

            async def one(index: int) -> None:
                answer = 1 + index % 2
                body = item(id=index, answer=str(answer), question=f"Question number {index % 50}?",
                            image=images[index % 2])
                async with semaphore:
                    started = time.perf_counter()
                    response = await client.post("/get_reward_mllm", json=body)
                    latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors.append(f"{index}: {response.status_code} {response.text[:200]}")
                    return
                result = response.json()
                if result.get("id") != index or result["reward"] != (1.0 if result["verdict"] == answer else -1.0):
                    errors.append(f"{index}: mismatched reply {result}")

            await asyncio.gather(*(one(i) for i in range(total)))
        return latencies, errors

    started = time.perf_counter()
    latencies, errors = asyncio.run(run())
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"\n[{server.backend}] {total} requests at concurrency {concurrency} in {elapsed:.1f} s "
          f"({total / elapsed:.1f} req/s): p50 {quantiles[49] * 1000:.0f} ms, p99 {quantiles[98] * 1000:.0f} ms")
    assert errors == [] and len(latencies) == total
    assert httpx.get(server.url + "/health").status_code == 200


# ---- /metrics ---------------------------------------------------------------------------------------

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample of ``/metrics``, parsed by the Prometheus client's own text-format parser."""
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(url + "/metrics", timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_the_requests_sent_during_a_load(server: Server) -> None:
    """Counters match what was sent, by endpoint, status and error kind; /metrics answers under load."""
    single, batch = "/get_reward_mllm", "/get_reward_mllm_batch"
    sends: list[tuple[str, dict[str, object], dict[str, str]]] = (
        [(single, {"json": item(id=i, question=f"Load question {i}?")}, AUTH) for i in range(40)]
        + [(batch, {"json": {"items": [item(question=f"Batch {b}.{i}?") for i in range(4)]}}, AUTH) for b in range(3)]
        + [(single, {"json": item(answer="3")}, AUTH)] * 5
        + [(single, {"json": item(image="notes.txt")}, AUTH)] * 3
        + [(single, {"json": item()}, {})] * 2
        + [(single, {"content": b"{}"}, {**AUTH, "Content-Type": "text/plain"})]
    )
    before = scrape(server.url)

    async def load() -> tuple[list[int], list[Samples]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=300) as client:
            requests = asyncio.gather(*(client.post(path, headers=headers, **kwargs)  # type: ignore[arg-type]
                                        for path, kwargs, headers in sends))
            during = [await asyncio.to_thread(scrape, server.url) for _ in range(3)]
            return [response.status_code for response in await requests], during

    statuses, during = asyncio.run(load())
    after = scrape(server.url)
    assert sorted(statuses) == sorted([200] * 43 + [422] * 8 + [401] * 2 + [415])
    for samples in during:
        assert 0 <= samples[("proxy_grm_requests_in_flight", ())] <= len(sends)

    assert delta(after, before, "proxy_grm_requests_total", endpoint=single, status="200") == 40
    assert delta(after, before, "proxy_grm_requests_total", endpoint=batch, status="200") == 3
    assert delta(after, before, "proxy_grm_requests_total", endpoint=single, status="422") == 8
    assert delta(after, before, "proxy_grm_requests_total", endpoint=single, status="401") == 2
    assert delta(after, before, "proxy_grm_requests_total", endpoint=single, status="415") == 1
    errors = {kind: delta(after, before, "proxy_grm_errors_total", kind=kind)
              for kind in ("invalid_request", "bad_image", "unauthorized", "content_type", "server_error")}
    assert errors == {"invalid_request": 5, "bad_image": 3, "unauthorized": 2, "content_type": 1, "server_error": 0}
    assert delta(after, before, "proxy_grm_request_latency_seconds_count", endpoint=single) == 51
    assert delta(after, before, "proxy_grm_request_latency_seconds_count", endpoint=batch) == 3
    assert delta(after, before, "proxy_grm_critiques_total") == 40 + 12
    assert after[("proxy_grm_requests_in_flight", ())] == 0 and after[("proxy_grm_pending_critiques", ())] == 0
    health = httpx.get(server.url + "/health").json()
    assert health["critiques"] == after[("proxy_grm_critiques_total", ())]
    assert health["truncated_critiques"] == after[("proxy_grm_truncated_critiques_total", ())]


def test_requests_whose_callers_left_are_aborted(server: Server) -> None:
    """128 requests, their callers gone once the service holds them all: each is written or aborted, never both.

    With vLLM, cancelling the generation reaches ``AsyncLLM.abort``: the engine writes fewer tokens than the
    critiques would hold and ends with nothing queued. Each question is ~1,500 tokens long: vLLM on 2 cores
    then needs ~11 s to answer all 128, against ~2 s with short questions, in which it once wrote all 8-token
    critiques before the callers left and nothing was aborted.
    """
    sent = 128
    padding = " Why?" * 750
    before = scrape(server.url)

    async def leave() -> None:
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=300,
                                     limits=httpx.Limits(max_connections=sent)) as client:
            posts = [asyncio.ensure_future(client.post("/get_reward_mllm",
                                                       json=item(question=f"Leaving {i}?{padding}")))
                     for i in range(sent)]
            deadline = time.monotonic() + 60
            while (await asyncio.to_thread(scrape, server.url))[("proxy_grm_requests_in_flight", ())] < sent:
                assert time.monotonic() < deadline, "the service never held every request"
                await asyncio.sleep(0.02)
            for post in posts:
                post.cancel()
            await asyncio.gather(*posts, return_exceptions=True)

    asyncio.run(leave())
    deadline = time.monotonic() + 120
    while (after := scrape(server.url))[("proxy_grm_requests_in_flight", ())] > 0:
        assert time.monotonic() < deadline, "requests of callers that left are still held"
        time.sleep(0.1)
    written = delta(after, before, "proxy_grm_critiques_total")
    aborted = delta(after, before, "proxy_grm_aborted_critiques_total")
    assert aborted >= 1 and written + aborted == sent, (written, aborted)
    assert delta(after, before, "proxy_grm_errors_total", kind="client_left") == aborted
    if server.backend == "vllm":
        # vLLM's front end aborts without counting it in request_success; the engine's own token counter shows
        # the aborted critiques were not written out (the random tiny model writes MAX_NEW_TOKENS each).
        tokens = total(after, "vllm:generation_tokens_total") - total(before, "vllm:generation_tokens_total")
        assert tokens < sent * MAX_NEW_TOKENS, (tokens, written, aborted)
        # vLLM's queue gauges come with the outputs of an engine step, so once the aborts have emptied the engine
        # they keep the last step's numbers. One request after the aborts steps the engine again.
        assert httpx.post(server.url + "/get_reward_mllm", headers=AUTH, json=item(question="After?"),
                          timeout=120).status_code == 200
        deadline = time.monotonic() + 60
        while (queued := sum(total(scrape(server.url), gauge)
                             for gauge in ("vllm:num_requests_running", "vllm:num_requests_waiting"))) > 0:
            assert time.monotonic() < deadline, f"{queued} requests still queued in the engine"
            time.sleep(0.2)
    assert httpx.get(server.url + "/health").json()["aborted_critiques"] == after[
        ("proxy_grm_aborted_critiques_total", ())]


def total(samples: Samples, name: str) -> float:
    """A metric summed over its labels (vLLM labels its counters by model and engine)."""
    return sum(value for (sample, _), value in samples.items() if sample == name)


def words(count: int, seed: int) -> str:
    vocabulary = "the red box sits on a wooden table near the window in bright morning light".split()
    return " ".join(vocabulary[(seed * 7 + i * 3) % len(vocabulary)] for i in range(count))


def test_a_grpo_group_reuses_its_shared_prefix(server: Server) -> None:
    """8 rollouts of one pair differ only in the rubric: the engine computes the shared part once.

    Fails if the vLLM backend's prefix cache is turned off (its hits stay at 0).
    """
    if server.backend != "vllm":
        pytest.skip("the transformers backend has no prefix cache: it computes every prompt in full")
    pair = item(question=words(30, 1), chosen=words(150, 2), rejected=words(150, 3), image="tall.jpg")
    group = [{**pair, "rubric": f"<rubric>{words(40, 10 + k)} criterion {k}</rubric>"} for k in range(8)]
    before = scrape(server.url)
    assert server.post("/get_reward_mllm", group[0]).status_code == 200
    response = server.post("/get_reward_mllm_batch", {"items": group[1:]})
    assert response.status_code == 200, response.text
    after = scrape(server.url)
    queries = total(after, "vllm:prefix_cache_queries_total") - total(before, "vllm:prefix_cache_queries_total")
    hits = total(after, "vllm:prefix_cache_hits_total") - total(before, "vllm:prefix_cache_hits_total")
    assert queries > 0, "vLLM counted no prefix-cache lookups: is the prefix cache off?"
    print(f"\nprefix cache: {hits:.0f} of {queries:.0f} prompt tokens ({hits / queries:.0%})")
    assert hits / queries >= 0.6
