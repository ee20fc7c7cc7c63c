"""An echo server for bench/echo.py, on one of the loops compared.

    python echo_server.py LOOP MODE [--cpu N]

LOOP: asyncio, uvloop, rloop or evloop. MODE: ``protocol`` (an ``asyncio.Protocol`` whose
``data_received`` writes the data back) or ``streams`` (``asyncio.start_server``: a coroutine
per connection that reads, writes back and awaits ``drain()``). Prints ``LISTENING <port>`` and serves until
killed.
"""

import asyncio
import os
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def handle(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def main(mode):
    loop = asyncio.get_running_loop()
    if mode == "protocol":
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=1024)
    else:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def new_loop(name):
    if name == "asyncio":
        return asyncio.new_event_loop()
    module = __import__(name)
    return module.new_event_loop()


if __name__ == "__main__":
    loop_name, mode = sys.argv[1], sys.argv[2]
    if "--cpu" in sys.argv:
        os.sched_setaffinity(0, {int(sys.argv[sys.argv.index("--cpu") + 1])})
    loop = new_loop(loop_name)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main(mode))
    finally:
        loop.close()
