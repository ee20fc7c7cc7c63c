"""asyncio / uvloop echo server with a Protocol, for `cargo xtask bench` (the peers' figures).

Usage: echo_server.py [--uvloop] [--cpu N]; prints "LISTENING <port>" and serves until killed.
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


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"LISTENING {port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--cpu" in args:
        os.sched_setaffinity(0, {int(args[args.index("--cpu") + 1])})
    if "--uvloop" in args:
        import uvloop
        uvloop.install()
    asyncio.run(main())
