"""The part every test HTTP server shares: an OpenAI-style JSON handler on 127.0.0.1 that answers
GET /v1/models with the server's model; subclasses add do_POST."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


def json_handler(server: Any) -> type[BaseHTTPRequestHandler]:
    """A handler base bound to `server` (which has a `.model` name)."""

    class JSONHandler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, data: dict[str, Any]) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
            else:
                self._send(404, {"error": "not found"})

    return JSONHandler
