"""The Python peers of the TCP echo benchmark (issue 5, docs/bench.md).

    python3 echo_server.py {protocol|streams} [--uvloop] [--tls CERT.pem KEY.pem]

Listens on 127.0.0.1 (a port the system picks, printed as "port N") with a
backlog of 4096 and echoes until killed.  "protocol" is an asyncio.Protocol
whose data_received writes the bytes back; "streams" is asyncio.start_server
with a handler looping read / write / drain.  --uvloop runs the same code on
uvloop's loop.  --tls serves TLS (ssl=, a context from
ssl.create_default_context(Purpose.CLIENT_AUTH) with the certificate chain
loaded) for the TLS echo benchmark (bench/run_tls.sh).
"""

import asyncio
import ssl
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def handle(reader, writer):
    try:
        while data := await reader.read(16384):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def main(kind, ctx):
    loop = asyncio.get_running_loop()
    if kind == "protocol":
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=4096, ssl=ctx)
    else:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096, ssl=ctx)
    print("port", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "protocol"
    if kind not in ("protocol", "streams"):
        sys.exit("usage: echo_server.py {protocol|streams} [--uvloop] [--tls CERT.pem KEY.pem]")
    ctx = None
    if "--tls" in sys.argv:
        i = sys.argv.index("--tls")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(sys.argv[i + 1], sys.argv[i + 2])
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.install()
    asyncio.run(main(kind, ctx))
