"""A loopback HTTP proxy that forwards every request to a real server and keeps what was sent.

Tests put it between litellm and a local model server to check the request litellm really sent (path, headers,
JSON body), which the trajectory alone cannot show.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class RecordingProxy:
    """`with RecordingProxy("http://127.0.0.1:18101") as proxy:` then send to `proxy.url`; `proxy.requests` holds
    `{"path", "headers", "body"}` of each request in order, `body` parsed as JSON."""

    def __init__(self, target: str):
        self.target = target.rstrip("/")
        self.requests: list[dict[str, Any]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(raw or b"{}")})
                forwarded = urllib.request.Request(
                    proxy.target + self.path, data=raw, method="POST",
                    headers={k: v for k, v in self.headers.items() if k.lower() not in {"host", "content-length"}},
                )
                try:
                    with _DIRECT.open(forwarded, timeout=900) as response:
                        status, body, kind = response.status, response.read(), response.headers.get("Content-Type")
                except urllib.error.HTTPError as error:
                    status, body, kind = error.code, error.read(), error.headers.get("Content-Type")
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
