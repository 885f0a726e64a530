"""Command line of the proxy service (``python proxy/proxy.py --model-path DIR ...``).

Flags are checked before the model loads; the model loads before the port is
bound, so a wrong ``--model-path`` or a busy port fails in seconds with a message.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import json
import logging
import os
import socket
from pathlib import Path

from proxy_grm.pixels import MAX_PIXELS_ENV, RELEASE_MAX_PIXELS, pixel_budget
from proxy_grm.proxy_contract import KEEP_ALIVE_S
from proxy_grm.proxy_service.app import DEFAULT_MAX_NEW_TOKENS, ServiceConfig, create_app
from proxy_grm.proxy_service.backends import BACKENDS, BackendConfig
from proxy_grm.supervise import supervise

API_KEY_ENV = "PROXY_GRM_API_KEY"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 20240  # the release's proxy port (its trainer's default api_port)

logger = logging.getLogger("proxy_grm.proxy")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Serve the proxy agent: POST /get_reward_mllm (the release's payload), "
                    "POST /get_reward_mllm_batch, GET /health, GET /metrics (Prometheus).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model-path", type=Path, required=True,
                        help="Hugging Face checkpoint folder of the proxy agent (the release's --model_id "
                             "integers mapped to hard-coded paths; pass the folder instead)")
    parser.add_argument("--backend", choices=BACKENDS, default="vllm",
                        help="vllm: async engine with continuous batching (GPU); transformers: CPU/debugging, "
                             "concurrent requests batched")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="interface to bind. Loopback by default so an unauthenticated service is never "
                             "exposed by accident; the trainer usually runs on another node, so pass "
                             "--host 0.0.0.0 together with --api-key there")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="the release's port, so its trainer-side defaults (ip/api_port) reach this service")
    parser.add_argument("--tp", type=int, default=1, help="tensor-parallel size (vllm backend)")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS,
                        help="longest critique the proxy may write (greedy decoding; default: the release's "
                             "16,384, and vLLM stops at the model length); cut-off critiques are flagged "
                             "'truncated' and counted at /health")
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                        help=f"require 'Authorization: Bearer KEY' on the reward endpoints (/health stays open); "
                             f"defaults to ${API_KEY_ENV}, which keeps the key out of the process list")
    parser.add_argument("--image-root", type=Path, default=None,
                        help="serve only images under this folder (symlinks and '..' resolved); relative "
                             "image paths are taken relative to it")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help=f"images are resized to at most this many pixels, as in SFT and RL "
                             f"(default: ${MAX_PIXELS_ENV}, else the release's {RELEASE_MAX_PIXELS})")
    parser.add_argument("--dtype", default="auto", help="model dtype, e.g. bfloat16 or float32")
    parser.add_argument("--device", default=None, help="transformers backend device (default: cuda if available)")
    parser.add_argument("--max-model-len", type=int, default=None, help="vllm backend context length")
    parser.add_argument("--gpu-memory-utilization", type=float, default=None, help="vllm backend")
    parser.add_argument("--enforce-eager", action="store_true",
                        help="vllm backend: skip graph compilation (faster start-up, e.g. on CPU)")
    parser.add_argument("--prefix-caching", action=argparse.BooleanOptionalAction, default=True,
                        help="vllm backend: reuse the computed prefix shared by the rollouts of a GRPO group "
                             "(image, question, responses; only the rubric differs); off only to measure it")
    parser.add_argument("--max-batch-size", type=int, default=None,
                        help="most sequences per batch (transformers default 32; vllm: the engine's max_num_seqs)")
    parser.add_argument("--batch-wait-ms", type=float, default=10.0,
                        help="transformers backend: how long to collect concurrent requests into one batch")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return parser


def model_path_problem(path: Path, name: str = "--model-path") -> str | None:
    """Why ``path`` (given as ``name``) is not a loadable checkpoint folder, or None."""
    if not path.is_dir():
        return f"{name} {path}: no such directory"
    config = path / "config.json"
    if not config.is_file():
        return f"{name} {path}: no config.json (expected a Hugging Face checkpoint folder)"
    try:
        json.loads(config.read_text())
    except (OSError, json.JSONDecodeError) as error:
        return f"{name} {path}: unreadable config.json ({error})"
    return None


def _check_port(host: str, port: int) -> str | None:
    """Why the port cannot be bound, or None (checked before the slow model load)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            return f"--host {host} --port {port}: cannot bind ({error.strerror or error})"
    return None


def validate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse bad flag combinations before any expensive work."""
    problem = model_path_problem(args.model_path)
    if problem is None and args.image_root is not None and not args.image_root.is_dir():
        problem = f"--image-root {args.image_root}: no such directory"
    if problem is None and args.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        problem = "--backend vllm: vllm is not installed here (run under .venv-vllm, or use --backend transformers)"
    counts = (("--tp", args.tp), ("--max-new-tokens", args.max_new_tokens), ("--max-batch-size", args.max_batch_size))
    if problem is None:
        problem = next((f"{flag} must be at least 1, got {value}" for flag, value in counts
                        if value is not None and value < 1), None)
    if problem is None and args.api_key == "":
        problem = "--api-key must not be empty"
    if problem is None:
        try:
            pixel_budget(args.max_pixels)
        except ValueError as error:
            problem = f"--max-pixels: {error}"
    if problem is None:
        problem = _check_port(args.host, args.port)
    if problem is not None:
        parser.error(problem)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = build_parser()
    args = parser.parse_args(argv)
    validate(args, parser)
    if args.backend == "vllm":
        supervise(argv)  # the engine's processes must not outlive this one, even after a SIGKILL
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.api_key is None and not _is_loopback(args.host):
        logger.warning("serving on %s without --api-key: anyone who can reach this port can use the proxy", args.host)
    config = ServiceConfig(
        backend=BackendConfig(
            model_path=args.model_path, backend=args.backend, tp=args.tp, dtype=args.dtype, device=args.device,
            max_model_len=args.max_model_len, gpu_memory_utilization=args.gpu_memory_utilization,
            enforce_eager=args.enforce_eager, prefix_caching=args.prefix_caching,
            max_batch_size=args.max_batch_size, batch_wait_ms=args.batch_wait_ms,
            pixels=pixel_budget(args.max_pixels),
        ),
        max_new_tokens=args.max_new_tokens,
        api_key=args.api_key,
        image_root=args.image_root,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                timeout_keep_alive=KEEP_ALIVE_S)
