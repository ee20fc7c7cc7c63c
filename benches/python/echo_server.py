"""asyncio / uvloop echo server with a Protocol, for `cargo xtask bench` (the peers' figures).

Usage: echo_server.py [--uvloop] [--tls] [--cpu N]; prints "LISTENING <port>" and serves until
killed. With --tls it serves TLS with a throwaway self-signed certificate for localhost (made with
the openssl command) and leaves the certificate where the bench's TLS client looks for it.
"""
import asyncio
import os
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            import socket
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.transport.write(data)


def tls_context(tmp):
    import ssl
    import subprocess
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-subj", "/CN=localhost", "-days", "1",
         "-addext", "subjectAltName=DNS:localhost",
         "-addext", "basicConstraints=critical,CA:FALSE",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx, cert


async def main(tls):
    import shutil
    import tempfile
    loop = asyncio.get_running_loop()
    ctx = cert = None
    if tls:
        tmp = tempfile.mkdtemp()
        ctx, cert = tls_context(tmp)
    server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=1024, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    if tls:
        shutil.copy(cert, os.path.join(tempfile.gettempdir(), f"evloop-bench-tls-{port}.pem"))
        shutil.rmtree(tmp)
    print(f"LISTENING {port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--cpu" in args:
        os.sched_setaffinity(0, {int(args[args.index("--cpu") + 1])})
    if "--uvloop" in args:
        import uvloop
        uvloop.install()
    asyncio.run(main("--tls" in args))
