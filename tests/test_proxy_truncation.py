"""The proxy's length limit: the release's default, and critiques cut off by it reported and counted.

A stand-in backend returns ``Completion``s with a chosen ``truncated`` flag, so
the app's per-answer flag and ``/health`` counters are checked without a model.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image

from proxy_grm.generation import Completion, Messages
from proxy_grm.proxy_service.app import DEFAULT_MAX_NEW_TOKENS, ServiceConfig, create_app
from proxy_grm.proxy_service.backends import BackendConfig
from proxy_grm.proxy_service.cli import build_parser


class CutOffBackend:
    """Answers "1"; a rubric containing ``LONG`` gives a critique cut off at the limit."""

    name = "stand-in"

    def __init__(self) -> None:
        self.budgets: list[int] = []

    async def generate(self, batch: list[Messages], max_new_tokens: int) -> list[str]:
        self.budgets.append(max_new_tokens)
        texts = [message[0]["content"][-1]["text"] for message in batch]
        return [Completion("<think>Chatbot 1 ... Chatbot 2", True) if "LONG" in text
                else Completion("<think>ok</think><answer>1</answer>", False) for text in texts]

    def close(self) -> None:
        pass


def test_default_limit_is_the_releases() -> None:
    assert DEFAULT_MAX_NEW_TOKENS == 16384
    args = build_parser().parse_args(["--model-path", "m"])
    assert args.max_new_tokens == DEFAULT_MAX_NEW_TOKENS
    assert ServiceConfig(BackendConfig(Path("m"))).max_new_tokens == DEFAULT_MAX_NEW_TOKENS


def test_truncated_critiques_are_flagged_and_counted(tmp_path: Path) -> None:
    Image.new("RGB", (56, 56), (10, 20, 30)).save(tmp_path / "a.png")
    backend = CutOffBackend()
    app = create_app(ServiceConfig(BackendConfig(Path("m"), backend="stand-in"), image_root=tmp_path),
                     backend_loader=lambda config: backend)
    item = {"question": "Q", "chosen": "a", "rejected": "b", "image": "a.png", "answer": "1"}
    with TestClient(app) as client:
        assert client.get("/health").json()["truncated_critiques"] == 0
        whole = client.post("/get_reward_mllm", json={**item, "rubric": "<rubric>short</rubric>"}).json()
        assert (whole["truncated"], whole["verdict"]) == (False, 1)
        batch = client.post("/get_reward_mllm_batch", json={"items": [
            {**item, "rubric": "<rubric>LONG</rubric>"}, {**item, "rubric": "<rubric>short</rubric>"}]}).json()
        assert [r["truncated"] for r in batch["results"]] == [True, False]
        assert batch["results"][0]["verdict"] == 2  # the release's last-digit reading of a cut-off critique
        health = client.get("/health").json()
    assert (health["critiques"], health["truncated_critiques"]) == (3, 1)
    assert health["max_new_tokens"] == DEFAULT_MAX_NEW_TOKENS and set(backend.budgets) == {DEFAULT_MAX_NEW_TOKENS}
