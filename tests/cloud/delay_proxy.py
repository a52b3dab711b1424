#!/usr/bin/env python3
"""A TCP proxy that adds a fixed one-way delay in each direction: a user-space stand-in
for `tc netem delay`, which this machine's kernel lacks (../shared/design/CLOUD-NOTES.md §6).

    delay_proxy.py --route LISTEN_PORT TARGET_HOST:TARGET_PORT RTT_MS [--route ...]

Each route listens on 127.0.0.1:LISTEN_PORT (0: any free port; the chosen ports are
printed, one "LISTEN_PORT TARGET RTT_MS" line per route, then "ready") and forwards to
the target. Half the RTT is added each way:
  - the connection to the target is made RTT/2 after the client's (its SYN's travel);
  - every chunk read from one side is written to the other RTT/2 after it arrived, in
    order (a chunk arriving while an earlier one waits is not delayed any further);
  - the end of either side's data (FIN) travels the same way, as a half-close, and a
    connection is closed on both sides once both directions are done, or at once on
    either side's error (reset, refused target) - never left half-open.
The client's own connect completes at once (the kernel answers the SYN before any user
space program sees it), so a client that times its TCP handshake sees ~0 ms here; the
time of a request on the connection is the RTT plus the server's time.

Used by tests/cloud/regions_test.py; importable too (DelayProxy)."""
import argparse
import asyncio
import sys
import time


class DelayProxy:
    """One route: listens on 127.0.0.1:port and forwards to target with rtt_ms/2 each way."""

    def __init__(self, port, target_host, target_port, rtt_ms):
        self.port, self.target_host, self.target_port = port, target_host, target_port
        self.one_way = rtt_ms / 2000.0
        self.server = None
        self.connections = 0  # accepted so far
        self.open = set()  # writers of open connections, both sides

    async def start(self):
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port,
                                                 reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self):
        if self.server:
            self.server.close()
            await self.server.wait_closed()
        for w in list(self.open):
            _close(w)

    async def _client(self, client_reader, client_writer):
        self.connections += 1
        self.open.add(client_writer)
        arrived = time.monotonic()
        upstream = asyncio.Queue()  # (deliver_at, bytes or None for EOF), client -> target
        reader_task = asyncio.ensure_future(_read_into(client_reader, upstream, self.one_way))
        target_writer = None
        try:
            await _sleep_until(arrived + self.one_way)
            try:
                target_reader, target_writer = await asyncio.wait_for(
                    asyncio.open_connection(self.target_host, self.target_port), 10)
            except (OSError, asyncio.TimeoutError):
                return  # nobody there: the client sees its connection closed
            self.open.add(target_writer)
            downstream = asyncio.Queue()
            tasks = [reader_task,
                     asyncio.ensure_future(_write_from(upstream, target_writer)),
                     asyncio.ensure_future(_read_into(target_reader, downstream, self.one_way)),
                     asyncio.ensure_future(_write_from(downstream, client_writer))]
            # Until both directions delivered their EOF, or either side failed.
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(t.exception() is not None for t in done if not t.cancelled()):
                    break
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            if not reader_task.done():
                reader_task.cancel()
            elif not reader_task.cancelled():
                reader_task.exception()  # retrieved: a reset client is not an error here
            for w in (client_writer, target_writer):
                if w is not None:
                    _close(w)
                    self.open.discard(w)


def _close(writer):
    try:
        writer.close()
    except (OSError, RuntimeError):
        pass


async def _sleep_until(when):
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def _read_into(reader, queue, one_way):
    """Reads chunks as they come, stamping each with when it is due on the other side."""
    try:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((time.monotonic() + one_way, data or None))
            if not data:
                return
    except OSError:
        queue.put_nowait((time.monotonic() + one_way, ConnectionResetError))
        raise


async def _write_from(queue, writer):
    """Writes each chunk at its due time; EOF as a half-close; a reset as an error."""
    while True:
        due, data = await queue.get()
        await _sleep_until(due)
        if data is ConnectionResetError:
            raise ConnectionResetError("the other side reset")
        if data is None:
            if writer.can_write_eof():
                writer.write_eof()
            return
        writer.write(data)
        await writer.drain()


async def _serve(routes):
    proxies = [await DelayProxy(p, h, tp, rtt).start() for p, h, tp, rtt in routes]
    for proxy, (_, h, tp, rtt) in zip(proxies, routes):
        print(f"{proxy.port} {h}:{tp} {rtt:g}", flush=True)
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()  # until killed
    finally:
        for proxy in proxies:
            await proxy.close()


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--route", nargs=3, action="append", required=True,
                        metavar=("LISTEN_PORT", "TARGET_HOST:PORT", "RTT_MS"))
    args = parser.parse_args(argv)
    routes = []
    for listen, target, rtt in args.route:
        host, _, port = target.rpartition(":")
        try:
            routes.append((int(listen), host or "127.0.0.1", int(port), float(rtt)))
        except ValueError:
            parser.error(f"bad route {listen} {target} {rtt}")
        if not 0 <= routes[-1][3] <= 60000:
            parser.error("RTT_MS must be 0 to 60000")
    try:
        asyncio.run(_serve(routes))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
