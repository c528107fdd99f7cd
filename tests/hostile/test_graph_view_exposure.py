"""Class 6: the graph view serves the model on show, to this machine, behind a per-session secret path:
not the project folder, not to a foreign Host header (DNS rebinding), not without the token."""

from __future__ import annotations

import http.client
import socket

import pytest


@pytest.fixture
def served(tmp_path):
    from workbench.graph_server import GraphServer

    artifacts = tmp_path / "project" / "artifacts"
    artifacts.mkdir(parents=True)
    shown = artifacts / ("aa" * 32 + ".onnx")
    shown.write_bytes(b"the model on show")
    (artifacts / ("bb" * 32 + ".onnx")).write_bytes(b"a private variant")
    server = GraphServer()
    server.show(shown.read_bytes(), "model.onnx")
    yield server
    server.stop()


def get(server, path: str, host: str | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("GET", path, skip_host=True)
    connection.putheader("Host", host if host is not None else f"127.0.0.1:{server.port}")
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


def test_the_model_and_viewer_are_served_under_the_token(served):
    status, body = get(served, f"/{served.token}/data/model.onnx")
    assert (status, body) == (200, b"the model on show")
    status, page = get(served, f"/{served.token}/")
    assert status == 200 and b'content="data/model.onnx"' in page
    assert get(served, f"/{served.token}/index.js")[0] == 200  # netron's own viewer files


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/index.html",
        "/data/model.onnx",
        "/{token}x/data/model.onnx",
        "/{token}/data/" + "bb" * 32 + ".onnx",
        "/{token}/data/../" + "bb" * 32 + ".onnx",
        "/{token}/../../project/artifacts/" + "bb" * 32 + ".onnx",
        "/{token}/%2e%2e/%2e%2e/etc/passwd",
        "/{token}/__init__.py",
    ],
)
def test_nothing_else_is_served(served, path):
    status, body = get(served, path.format(token=served.token))
    assert status == 404 and b"private" not in body and b"model on show" not in body


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1.nip.io:{port}", "localhost:1", ""])
def test_a_foreign_host_header_is_refused(served, host):
    status, body = get(served, f"/{served.token}/data/model.onnx", host=host.format(port=served.port))
    assert status == 403 and body == b"forbidden"


def test_it_listens_on_loopback_only(served):
    assert served._server.server_address[0] == "127.0.0.1"
    addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    for outward in addresses - {"127.0.0.1", "127.0.1.1"}:
        with pytest.raises(OSError), socket.create_connection((outward, served.port), timeout=2):
            pass


def test_each_session_gets_its_own_token():
    from workbench.graph_server import GraphServer

    first, second = GraphServer(), GraphServer()
    try:
        assert first.token != second.token and len(first.token) >= 32
    finally:
        first.stop()
        second.stop()


def test_the_graph_tab_shows_a_private_copy(qtbot, tmp_path):
    from workbench.ui.graph_view import GraphView

    model = tmp_path / "model.onnx"
    model.write_bytes(b"bytes of the model")
    view = GraphView(use_webengine=False)
    qtbot.addWidget(view)
    view.show_model(model.read_bytes())  # the window passes the variant's bytes, never a path to re-read
    model.write_bytes(b"changed on disk afterwards")
    token = view.url.rstrip("/").rsplit("/", 1)[-1]
    assert view.url.startswith("http://127.0.0.1:") and len(token) >= 32
    assert get(view._server, f"/{token}/data/model.onnx") == (200, b"bytes of the model")
    view.stop()
