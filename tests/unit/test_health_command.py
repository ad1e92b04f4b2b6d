"""`muc-bridge health`: the Docker image's HEALTHCHECK asks the running bridge's /health."""

import asyncio

from bridge.cli import main
from bridge.demo.servers import free_port


async def serve(status: str, body: str):
    async def answer(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.0 {status}\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode())
        await writer.drain()
        writer.close()
    port = free_port()
    return await asyncio.start_server(answer, "127.0.0.1", port), port


async def health(tmp_path, text: str) -> int:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return await asyncio.to_thread(main, ["health", "--config", str(path)])


async def test_ready_is_0_and_unready_or_silent_is_1(tmp_path, capsys):
    server, port = await serve("200 OK", "ready\n")
    async with server:
        assert await health(tmp_path, f"metrics: {{listen: '0.0.0.0:{port}'}}\n") == 0
    assert "200 ready" in capsys.readouterr().out
    server, port = await serve("503 Service Unavailable", "not ready: net not connected\n")
    async with server:
        assert await health(tmp_path, f"metrics: {{listen: '127.0.0.1:{port}'}}\n") == 1
    assert "503 not ready: net not connected" in capsys.readouterr().out
    assert await health(tmp_path, f"metrics: {{listen: '127.0.0.1:{free_port()}'}}\n") == 1
    assert "no answer from 127.0.0.1:" in capsys.readouterr().out


async def test_without_metrics_there_is_nothing_to_ask(tmp_path, capsys):
    assert await health(tmp_path, "component: {jid: bridge.example.org}\n") == 0
    assert "no metrics.listen" in capsys.readouterr().out
    assert await health(tmp_path, "metrics: [\n") == 1
    assert "not valid YAML" in capsys.readouterr().err
