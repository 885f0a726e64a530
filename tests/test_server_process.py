"""A server subprocess ends with its group, and leaves no vLLM IPC socket behind."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from proxy_grm.toy.servers import ServerProcess, free_port

# Binds a Unix socket where vLLM puts its ZMQ IPC sockets, then answers every GET with 200.
SERVER = """
import os, socket, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
ipc = socket.socket(socket.AF_UNIX)
ipc.bind(os.path.join(os.environ["VLLM_RPC_BASE_PATH"], "engine-core"))
class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def test_the_ipc_sockets_go_with_the_server(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess([sys.executable, "-c", SERVER, str(port)], f"http://127.0.0.1:{port}/health",
                           tmp_path / "server.log").wait_healthy(timeout_s=30)
    sockets = list(Path(server.rpc_dir).iterdir())
    assert [path.name for path in sockets] == ["engine-core"] and sockets[0].is_socket()
    server.stop()
    assert server.proc.returncode is not None and not Path(server.rpc_dir).exists()
    with socket.socket() as probe:  # nothing answers on its port any more
        assert probe.connect_ex(("127.0.0.1", port)) != 0
