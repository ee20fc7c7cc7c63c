# A CPython asyncio TLS echo server for the interop tests: prints its port, then, once its one
# client is done, "OK <bytes> <TLS version> <SNI>" (or "ERR ...").
import asyncio, ssl, sys

async def main():
    done = asyncio.get_running_loop().create_future()

    async def handle(reader, writer):
        total = 0
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                total += len(data)
                writer.write(data)
                await writer.drain()
            ssl_object = writer.get_extra_info("ssl_object")
            info = f"{ssl_object.version()} {','.join(sni) or '-'}"
            writer.close()
            await writer.wait_closed()
        except Exception as e:
            done.set_result(f"ERR {e!r}")
            return
        done.set_result(f"OK {total} {info}")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    sni = []
    ctx.sni_callback = lambda sslobj, name, sslctx: sni.append(name)
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    print(server.sockets[0].getsockname()[1], flush=True)
    print(await asyncio.wait_for(done, 120), flush=True)
    server.close()
    await server.wait_closed()

asyncio.run(main())
