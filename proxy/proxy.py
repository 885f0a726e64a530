"""Serve the proxy agent over HTTP: ``python proxy/proxy.py --model-path DIR [--backend vllm|transformers] ...``.

See ``proxy_grm.proxy_service`` for the contract; ``--help`` for every flag.
"""

from proxy_grm.proxy_service.cli import main

if __name__ == "__main__":  # the guard matters: vLLM spawns worker processes that re-import this file
    main()
