"""A stand-in proxy service speaking the proxy HTTP contract, for reward-function tests.

Its "judgement" is read off the rubric: ``PICK1`` picks Response 1, ``PICK2``
Response 2 (both or neither: no verdict), so a test controls the proxy reward of
each rollout through its rubric text; ``TRUNCATED`` marks the critique as cut off
at the length limit. It records every request body, can fail the
first N requests with 503 and delay answers (to be killed mid-batch).

    python tests/reward_stub_proxy.py --port P [--fail-first N] [--delay-s S] [--api-key K]
"""

from __future__ import annotations

import argparse
import asyncio

import uvicorn
from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel


class RewardRequest(BaseModel):
    question: str
    chosen: str
    rejected: str
    image: str
    answer: str
    rubric: str


def stub_verdict(rubric: str) -> int | None:
    picks = {n for n in (1, 2) if f"PICK{n}" in rubric}
    return picks.pop() if len(picks) == 1 else None


def build_app(fail_first: int, delay_s: float, api_key: str | None) -> FastAPI:
    app = FastAPI()
    received: list[dict] = []

    def check_auth(authorization: str | None) -> None:
        if api_key and authorization != f"Bearer {api_key}":
            raise HTTPException(status_code=401, detail="missing or wrong bearer key")

    async def judge(request: RewardRequest) -> dict:
        received.append(request.model_dump())
        if len(received) <= fail_first:
            return JSONResponse({"detail": "warming up"}, status_code=503)
        await asyncio.sleep(delay_s)
        verdict = stub_verdict(request.rubric)
        reward = 1.0 if verdict is not None and str(verdict) == request.answer else -1.0
        return {"reward": reward, "verdict": verdict, "critique": f"stub picked {verdict}",
                "truncated": "TRUNCATED" in request.rubric}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.post("/get_reward_mllm")
    async def get_reward_mllm(request: RewardRequest, authorization: str | None = Header(None)) -> dict:
        check_auth(authorization)
        return await judge(request)

    @app.post("/release/reward")
    async def release_reward(request: RewardRequest) -> dict:
        """The release's deployments answer with ``reward`` only."""
        answer = await judge(request)
        return answer if isinstance(answer, JSONResponse) else {"reward": answer["reward"]}

    @app.get("/received")
    async def received_bodies() -> list[dict]:
        return received

    return app


def start_stub(log_dir, *args: str):
    """Start the stub as a real uvicorn subprocess; returns (ServerProcess, base URL). Caller stops it."""
    import sys
    from pathlib import Path

    from conftest import ServerProcess, free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = ServerProcess([sys.executable, str(Path(__file__)), "--port", str(port), *args], f"{base}/health",
                           Path(log_dir) / f"stub-{port}.log")
    server.wait_healthy(timeout_s=60)
    return server, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--api-key")
    args = parser.parse_args()
    app = build_app(args.fail_first, args.delay_s, args.api_key)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

