#!/usr/bin/python3
# The off-the-shelf peer of `tunnel ws-connect` (shared/PEERS.md): a small
# stdin/stdout <-> WebSocket bridge on Debian's python3-websockets, used as
# ssh's ProxyCommand in front of websockify.
#   ssh -o ProxyCommand='/usr/bin/python3 ws_stdio_bridge.py ws://127.0.0.1:WP/' ...
import asyncio
import sys

import websockets


async def main(url):
    async with websockets.connect(url, max_size=None, compression=None, ping_interval=None) as ws:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout)
        writer = asyncio.StreamWriter(transport, protocol, None, loop)

        async def up():
            while True:
                data = await reader.read(1 << 20)
                if not data:
                    break
                await ws.send(data)
            await ws.close()

        async def down():
            async for message in ws:
                writer.write(message)
                await writer.drain()

        done, pending = await asyncio.wait([asyncio.create_task(up()), asyncio.create_task(down())],
                                           return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()


asyncio.run(main(sys.argv[1]))
