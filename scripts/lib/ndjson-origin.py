#!/usr/bin/env python3
"""A tiny stand-in for a local LLM's HTTP API, used by scripts/demo.

GET /api/tags answers a small JSON document at once; any other path `application/x-ndjson`, chunked, one JSON line
every 200 ms (like Ollama's /api/generate streaming tokens), then a final
`done` line. Prints the port it bound on stdout and serves until killed.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = "tokens arrive one by one through the relay as the model makes them".split()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep the demo output clean
        pass

    def _stream(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.endswith("/api/tags"):  # a quick, non-streaming answer
            body = b'{"models": [{"name": "demo"}]}\n'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for i, word in enumerate(WORDS):
                self._chunk({"n": i, "response": word, "done": False})
                time.sleep(0.2)
            self._chunk({"response": "", "done": True})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller hung up: stop generating

    def _chunk(self, obj):
        line = (json.dumps(obj) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        self.wfile.flush()

    do_GET = _stream
    do_POST = _stream


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
