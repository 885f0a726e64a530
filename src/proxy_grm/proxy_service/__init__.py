"""The proxy agent as an HTTP service: the GRPO reward asks it to judge a pair using only a rubric.

    python proxy/proxy.py --model-path DIR [--backend vllm|transformers] [--host H] [--port P]
                          [--tp N] [--max-new-tokens N] [--api-key KEY] [--image-root DIR]

Endpoints (the reward contract is ``proxy_grm.proxy_contract``):

- ``POST /get_reward_mllm``: the release's payload ``{question, chosen, rejected,
  image, answer, rubric}`` (plus an optional ``id``) -> ``{"reward": 1.0 | -1.0, "verdict": 1 | 2 | null,
  "critique": str, "truncated": bool}`` (and ``id`` when one was sent); reward +1 iff the proxy's verdict
  equals ``answer``; ``truncated``: the critique stopped at ``--max-new-tokens``.
- ``POST /get_reward_mllm_batch``: ``{"items": [...]}`` -> ``{"results": [...]}`` in order.
- ``GET /health`` (``schemas.HealthResponse``): ``{"status": "ok", "model", "backend",
  "max_new_tokens", "critiques", "truncated_critiques", "pending_critiques", "aborted_critiques"}``,
  the counts since start-up (critiques written, of those cut off at ``max_new_tokens``, asked of the
  engine and not yet written, dropped because their caller left). The reward client reads
  ``critiques`` to tell a busy proxy from a stalled one (``reward.proxy_client``). Answered only
  once the model is loaded (it loads before the port is bound). Always open, even with ``--api-key``.
- ``POST /check_images``: ``{"images": [...]}`` -> ``{"unreadable": [{"image", "reason"}]}``, the
  references this node cannot read (the preflight sends it the training rows' image paths).
- ``GET /metrics``: Prometheus text format (requests, errors by kind, in flight, latency,
  critiques and truncated critiques; with vLLM the engine's own, prefix-cache hits among them;
  see ``metrics``). Open like ``/health``: it holds counts, never a critique.

Decisions:

- Default host is 127.0.0.1: an unauthenticated service that reads local image
  files is never exposed by accident. The trainer usually runs on another node:
  pass ``--host 0.0.0.0 --api-key KEY`` there (a warning is logged without a key).
- ``--api-key`` (or ``$PROXY_GRM_API_KEY``): reward endpoints need
  ``Authorization: Bearer KEY``, else 401.
- Images: local paths and ``data:image/...;base64,`` URIs; http(s) URLs are refused
  (see ``proxy_grm.images``). With ``--image-root``, paths resolving outside it get
  a 422 naming the field; relative paths are taken relative to the root (without
  one, relative to the server's working directory).
- Bad input is a 4xx naming the field; one log line per request (id, items,
  latency, verdict counts), never the critique.

``schemas`` holds the health and image-check models, ``backends`` the engines (vLLM async engine,
batched transformers), ``app`` the FastAPI app factory, ``metrics`` the Prometheus metrics, ``cli`` the
command line.
"""
