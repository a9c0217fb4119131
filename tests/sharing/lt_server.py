"""A loopback stand-in for the public localtunnel service, written for the tests (no internet here).

It speaks the protocol the real ``lt`` client (npm ``localtunnel`` 2.0.2) expects:

* ``GET /?new`` or ``GET /<name>`` on the control port opens a tunnel: a TCP listener on 127.0.0.1, answered as
  JSON ``{id, port, max_conn_count, url}``. The client then keeps ``max_conn_count`` sockets open to that port
  and pipes each one to its local server.
* A request whose Host is ``<id>.localhost:<control port>`` (the tunnel's public URL) is sent through one of
  those sockets, byte for byte, both ways, until either side closes.
* ``GET /mytunnelpassword`` answers the caller's IP, as the hosted service does.

Test hooks: ``refuse=True`` answers every new-tunnel request with 503 (the client then retries forever),
``honor_names=False`` gives every tunnel a new random name (as the busy public service often does),
``drop(id)`` ends a tunnel the way a server restart does (the client exits with "connection refused").
Run it alone with ``python tests/sharing/lt_server.py [--port N]``: it prints its URL and serves until killed.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import sys
import threading
from dataclasses import dataclass, field

HEAD_LIMIT = 64 * 1024
NAME_RE = re.compile(r"^/([a-z0-9][a-z0-9-]{3,62})$")


@dataclass
class _Tunnel:
    id: str
    server: asyncio.AbstractServer
    port: int
    idle: asyncio.Queue = field(default_factory=asyncio.Queue)
    sockets: dict = field(default_factory=dict)  # writer -> reader, every client socket not yet released

    @property
    def connected(self) -> int:
        """Client sockets still open (a closed peer shows as EOF even on a socket nobody reads)."""
        return sum(1 for reader in self.sockets.values() if not reader.at_eof())


class LoopbackTunnelServer:
    """A localtunnel-protocol server on 127.0.0.1, run on its own event-loop thread."""

    def __init__(
        self, port: int = 0, *, max_conn: int = 4, refuse: bool = False, honor_names: bool = True,
        domain: str = "localhost",
    ):
        self.requested_port = port
        self.honor_names = honor_names
        self.max_conn = max_conn
        self.refuse = refuse
        self.domain = domain
        self.port: int | None = None
        self.tunnels: dict[str, _Tunnel] = {}
        self.new_tunnel_requests = 0
        self.proxied_requests = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """What to pass as ``lt --host`` / ``%tracking_ui --share --tunnel-host``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackTunnelServer:
        self._thread = threading.Thread(target=self._run, name="lt-loopback", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("loopback tunnel server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> LoopbackTunnelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def drop(self, tunnel_id: str) -> None:
        """End a tunnel: close its listener and every client socket (like a restart of the real service)."""
        asyncio.run_coroutine_threadsafe(self._drop(tunnel_id), self._loop).result(10)

    def connected(self, tunnel_id: str) -> int:
        """How many client sockets the tunnel has open now."""
        tunnel = self.tunnels.get(tunnel_id)
        return tunnel.connected if tunnel else 0

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle_public, "127.0.0.1", self.requested_port)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _shutdown(self) -> None:
        for tunnel_id in list(self.tunnels):
            await self._drop(tunnel_id)
        self._server.close()

    async def _drop(self, tunnel_id: str) -> None:
        tunnel = self.tunnels.pop(tunnel_id, None)
        if tunnel is None:
            return
        tunnel.server.close()
        for writer in list(tunnel.sockets):
            writer.close()

    # -- tunnels -------------------------------------------------------------------------------------------

    async def _open_tunnel(self, wanted: str | None) -> _Tunnel:
        existing = self.tunnels.get(wanted) if wanted else None
        if existing is not None and existing.connected == 0:
            await self._drop(wanted)  # its client is gone: the name is free again
        if not wanted or wanted in self.tunnels or not self.honor_names:
            wanted = secrets.token_hex(4)
        tunnel_id = wanted

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            tunnel = self.tunnels.get(tunnel_id)
            if tunnel is None:
                writer.close()
                return
            tunnel.sockets[writer] = reader
            await tunnel.idle.put((reader, writer))

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        tunnel = _Tunnel(tunnel_id, server, server.sockets[0].getsockname()[1])
        self.tunnels[tunnel_id] = tunnel
        return tunnel

    async def _take_socket(self, tunnel: _Tunnel, timeout: float = 15.0):
        """An idle client socket whose peer is still there, waiting up to ``timeout`` for one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                reader, writer = await asyncio.wait_for(tunnel.idle.get(), remaining)
            except asyncio.TimeoutError:
                return None
            if reader.at_eof() or writer.is_closing():
                self._release(tunnel, writer)
                continue
            return reader, writer

    def _release(self, tunnel: _Tunnel, writer: asyncio.StreamWriter) -> None:
        tunnel.sockets.pop(writer, None)
        writer.close()

    # -- public port ---------------------------------------------------------------------------------------

    async def _handle_public(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        if len(head) > HEAD_LIMIT:
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, _ = lines[0].split(" ", 2)
        except ValueError:
            writer.close()
            return
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        host = headers.get("host", "")
        label = host.split(".", 1)[0]
        if host.endswith(f".{self.domain}:{self.port}") and label in self.tunnels:
            await self._proxy(self.tunnels[label], head, reader, writer)
            return
        await self._control(method, target, writer)

    async def _control(self, method: str, target: str, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        if target == "/mytunnelpassword":
            await _respond(writer, 200, peer, "text/plain")
            return
        wanted = None
        match = NAME_RE.match(target)
        if target == "/?new" or match:
            wanted = match.group(1) if match else None
            self.new_tunnel_requests += 1
            if self.refuse:
                await _respond(writer, 503, json.dumps({"message": "no new tunnels accepted"}), "application/json")
                return
            tunnel = await self._open_tunnel(wanted)
            body = {
                "id": tunnel.id,
                "port": tunnel.port,
                "max_conn_count": self.max_conn,
                "url": f"http://{tunnel.id}.{self.domain}:{self.port}",
            }
            await _respond(writer, 200, json.dumps(body), "application/json")
            return
        if target == "/api/status":
            await _respond(writer, 200, json.dumps({"tunnels": len(self.tunnels)}), "application/json")
            return
        await _respond(writer, 404, "not found", "text/plain")

    async def _proxy(self, tunnel: _Tunnel, head: bytes, reader, writer) -> None:
        taken = await self._take_socket(tunnel)
        if taken is None:
            await _respond(writer, 502, "tunnel has no client connected", "text/plain")
            return
        self.proxied_requests += 1
        t_reader, t_writer = taken
        t_writer.write(head)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, t_writer), pipe(t_reader, writer))
        self._release(tunnel, t_writer)


async def _respond(writer: asyncio.StreamWriter, status: int, body: str, content_type: str) -> None:
    reason = {200: "OK", 404: "Not Found", 502: "Bad Gateway", 503: "Service Unavailable"}[status]
    data = body.encode()
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(data)}\r\n"
        f"Connection: close\r\n\r\n".encode()
        + data
    )
    try:
        await writer.drain()
    except ConnectionError:
        pass
    writer.close()


def main(argv: list[str]) -> int:
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else 0
    server = LoopbackTunnelServer(port).start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
