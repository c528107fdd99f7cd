"""A private web server for netron's graph view: one model, this machine, an unguessable address.

netron's own server shares the whole folder of the file it shows, to anyone who can reach the port
(other local users, or a web page that rebinds a domain name to 127.0.0.1). This one binds 127.0.0.1,
answers only requests under a random per-session path and with a Host header naming this server, and
serves netron's viewer files plus exactly one model, held in memory: never a path on disk.
"""

from __future__ import annotations

import http.server
import re
import secrets
import threading
from pathlib import Path

_ASSET_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/truetype",
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class GraphServer:
    """Serve netron and the model given to :meth:`show`; ``url`` is the page to open."""

    def __init__(self) -> None:
        import netron

        self.token = secrets.token_urlsafe(24)
        self._assets = Path(netron.__file__).resolve().parent
        self._model: tuple[str, bytes] | None = None
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="graph-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.token}/"

    def show(self, data: bytes, name: str) -> str:
        """Serve ``data`` (a private in-memory copy) as the model named ``name``; returns the page URL."""
        safe = _SAFE_NAME.sub("_", name) or "model.onnx"
        with self._lock:
            self._model = (safe, bytes(data))
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            self._model = None

    # --- request handling (server threads) --------------------------------------------------------
    def allowed_host(self, host: str | None) -> bool:
        return host in (f"127.0.0.1:{self.port}", f"localhost:{self.port}")

    def content(self, path: str) -> tuple[int, str, bytes]:
        prefix = f"/{self.token}/"
        path = path.split("?", 1)[0].split("#", 1)[0]
        if not path.startswith(prefix):
            return 404, "text/plain", b"not found"
        rest = path[len(prefix) :]
        with self._lock:
            model = self._model
        if rest in ("", "index.html"):
            return 200, "text/html", self._index(model)
        if rest.startswith("data/"):
            if model is not None and rest == f"data/{model[0]}":
                return 200, "application/octet-stream", model[1]
            return 404, "text/plain", b"not found"
        asset = (self._assets / rest).resolve()
        if asset.parent != self._assets and self._assets not in asset.parents:
            return 404, "text/plain", b"not found"
        kind = _ASSET_TYPES.get(asset.suffix)
        if kind is None or not asset.is_file():
            return 404, "text/plain", b"not found"
        return 200, kind, asset.read_bytes()

    def _index(self, model: tuple[str, bytes] | None) -> bytes:
        import netron

        html = (self._assets / "index.html").read_text(encoding="utf-8")
        meta = ['<meta name="type" content="Python">', f'<meta name="version" content="{netron.__version__}">']
        if model is not None:
            meta += [f'<meta name="file" content="data/{model[0]}">', f'<meta name="identifier" content="{model[0]}">']
        html = re.sub(r'<meta name="version" content=".*">', lambda _m: "\n".join(meta), html)
        return html.encode("utf-8")


def _handler(server: GraphServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(send_body=True)

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def _answer(self, send_body: bool) -> None:
            if not server.allowed_host(self.headers.get("Host")):
                status, kind, body = 403, "text/plain", b"forbidden"  # another name for 127.0.0.1: DNS rebinding
            else:
                status, kind, body = server.content(self.path)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # requests are not the user's business; errors surface in the view

    return Handler
