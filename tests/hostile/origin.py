#!/usr/bin/env python3
"""The origin behind the relay in the hostile tests: a threaded HTTP/1.1 server.

Keep-alive, strict parsing (a request it cannot parse is logged as "bad" and
answered 400), and a JSON-lines log of every request line it receives, so the
driver can prove what did and did not reach it through the relay.

Endpoints (query parameters are decimal integers):
  GET  /hello?id=N&size=S     200, S bytes of payload(N) (Content-Length)
  POST /echo                  200, the request body (Content-Length or chunked)
  GET  /headers               200, JSON {"line": ..., "headers": [[name, value], ...]}
  GET  /stream?id=N&n=K&ms=M  200 chunked NDJSON: K lines {"id":N,"i":i}, M ms apart
  GET  /big?id=N&size=B       200, B bytes written 64 KiB at a time; logs big_done/big_aborted
  GET  /upgrade               101 when the request carries Upgrade, then echoes raw bytes
  GET  /raw                   200 "raw\\n"
  anything else               404

Run: origin.py --log FILE   (prints "port N" on stdout once listening)
"""
import argparse
import json
import resource
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

MAX_LINE = 65536
MAX_HEADERS = 200


def payload(ident, size):
    """The deterministic body of /hello?id=ident&size=size."""
    unit = f"{ident}-".encode()
    return (unit * (size // len(unit) + 1))[:size]


class BadRequest(Exception):
    pass


class Log:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", buffering=1, encoding="utf-8")

    def write(self, **record):
        record["t"] = round(time.time(), 3)
        line = json.dumps(record, ensure_ascii=True)
        with self.lock:
            self.f.write(line + "\n")


def read_line(rfile):
    line = rfile.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise BadRequest("line too long")
    return line


def read_head(rfile):
    """(request line, [(name, value)]) or None on a clean EOF before a request."""
    line = read_line(rfile)
    if line in (b"\r\n", b"\n"):  # RFC 9112 §2.2: ignore one empty line first
        line = read_line(rfile)
    if not line:
        return None
    if not line.endswith(b"\r\n"):
        raise BadRequest("request line not terminated by CRLF: %r" % line[:200])
    if b"\r" in line[:-2] or b"\0" in line:
        raise BadRequest("CR or NUL inside the request line: %r" % line[:200])
    request_line = line[:-2].decode("latin-1")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise BadRequest("bad request line: %r" % request_line[:200])
    headers = []
    while True:
        line = read_line(rfile)
        if not line:
            raise BadRequest("EOF inside the head of %r" % request_line[:200])
        if line == b"\r\n":
            break
        if not line.endswith(b"\r\n") or line[:1] in (b" ", b"\t") or b":" not in line \
                or b"\r" in line[:-2]:
            raise BadRequest("bad header line: %r" % line[:200])
        name, value = line[:-2].decode("latin-1").split(":", 1)
        if not name or name != name.strip() or any(c in name for c in " \t\0"):
            raise BadRequest("bad header name: %r" % name[:100])
        if "\0" in value:
            raise BadRequest("NUL in header %s" % name)
        headers.append((name, value.strip(" \t")))
        if len(headers) > MAX_HEADERS:
            raise BadRequest("too many headers")
    return request_line, headers


def header(headers, name):
    values = [v for n, v in headers if n.lower() == name.lower()]
    return ", ".join(values) if values else None


class Aborted(Exception):
    """The peer went away in the middle of a message."""


def read_exact(rfile, n):
    data = rfile.read(n)
    if len(data) != n:
        raise Aborted("EOF after %d of %d body bytes" % (len(data), n))
    return data


def read_body(rfile, headers):
    te = header(headers, "Transfer-Encoding")
    cl = header(headers, "Content-Length")
    if te is not None:
        if te.strip().lower() != "chunked" or cl is not None:
            raise BadRequest("Transfer-Encoding %r with Content-Length %r" % (te, cl))
        body = bytearray()
        while True:
            line = read_line(rfile)
            if not line:
                raise Aborted("EOF in a chunk size line")
            if not line.endswith(b"\r\n"):
                raise BadRequest("chunk size line not CRLF-terminated: %r" % line[:100])
            size_text = line[:-2].split(b";", 1)[0]
            if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
                raise BadRequest("bad chunk size: %r" % line[:100])
            size = int(size_text, 16)
            if size == 0:
                while True:  # trailers
                    t = read_line(rfile)
                    if not t:
                        raise Aborted("EOF in the trailers")
                    if t == b"\r\n":
                        return bytes(body)
            body += read_exact(rfile, size)
            if read_exact(rfile, 2) != b"\r\n":
                raise BadRequest("chunk data not followed by CRLF")
    if cl is not None:
        if not cl.isdigit():
            raise BadRequest("bad Content-Length %r" % cl)
        return read_exact(rfile, int(cl))
    return b""


class Handler(socketserver.StreamRequestHandler):
    rbufsize = 65536
    counter = 0
    counter_lock = threading.Lock()

    def setup(self):
        super().setup()
        with Handler.counter_lock:
            Handler.counter += 1
            self.conn_id = Handler.counter

    def respond(self, status, reason, body=b"", extra=(), close=False):
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
        head += list(extra)
        if close:
            head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        self.wfile.flush()

    def handle(self):
        log = self.server.log
        while True:
            try:
                head = read_head(self.rfile)
            except BadRequest as e:
                log.write(ev="bad", conn=self.conn_id, why=str(e))
                self.try_respond(400, "Bad Request", b"origin: bad request\n")
                return
            except (ConnectionError, OSError):
                return
            if head is None:
                return
            line, headers = head
            method, target, version = line.split(" ")
            log.write(ev="req", conn=self.conn_id, line=line, headers=headers)
            try:
                body = read_body(self.rfile, headers)
            except BadRequest as e:
                log.write(ev="bad", conn=self.conn_id, line=line, why=str(e))
                self.try_respond(400, "Bad Request", b"origin: bad body\n")
                return
            except (Aborted, ConnectionError, OSError) as e:
                log.write(ev="aborted", conn=self.conn_id, line=line, why=str(e))
                return
            conn_hdr = (header(headers, "Connection") or "").lower()
            close = version == "HTTP/1.0" or "close" in [t.strip() for t in conn_hdr.split(",")]
            try:
                keep = self.dispatch(method, target, headers, body, close, line)
            except (ConnectionError, OSError) as e:
                log.write(ev="write_failed", conn=self.conn_id, line=line, why=str(e))
                return
            if not keep or close:
                return

    def try_respond(self, status, reason, body):
        try:
            self.respond(status, reason, body, close=True)
        except OSError:
            pass

    def dispatch(self, method, target, headers, body, close, line):
        url = urllib.parse.urlsplit(target)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}

        def num(key, default=0):
            try:
                return int(q.get(key, default))
            except ValueError:
                return default

        path = url.path
        if path == "/hello":
            self.respond(200, "OK", payload(num("id"), num("size", 16)), close=close)
        elif path == "/echo":
            self.respond(200, "OK", body, ["Content-Type: application/octet-stream"], close=close)
        elif path == "/headers":
            doc = json.dumps({"line": line, "headers": headers}).encode()
            self.respond(200, "OK", doc, ["Content-Type: application/json"], close=close)
        elif path == "/raw":
            self.respond(200, "OK", b"raw\n", close=close)
        elif path == "/stream":
            return self.stream(num("id"), num("n", 5), num("ms", 20), close)
        elif path == "/big":
            return self.big(num("id"), num("size", 1 << 20), close)
        elif path == "/upgrade" and header(headers, "Upgrade"):
            self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n"
                             b"Connection: Upgrade\r\n\r\n")
            self.wfile.flush()
            while True:  # raw echo until EOF
                data = self.connection.recv(65536)
                if not data:
                    return False
                self.connection.sendall(data)
        elif path == "/upgrade":
            self.respond(200, "OK", b"not upgraded\n", close=close)
        else:
            self.respond(404, "Not Found", b"origin: no such path\n", close=close)
        return True

    def stream(self, ident, n, ms, close):
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n" \
               "Transfer-Encoding: chunked\r\n"
        self.wfile.write((head + ("Connection: close\r\n" if close else "") + "\r\n").encode())
        self.wfile.flush()
        for i in range(n):
            line = json.dumps({"id": ident, "i": i}).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
            time.sleep(ms / 1000.0)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return True

    def big(self, ident, size, close):
        log = self.server.log
        log.write(ev="big_start", conn=self.conn_id, id=ident, size=size)
        block = b"B" * 65536
        sent = 0
        try:
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n"
            self.wfile.write((head + ("Connection: close\r\n" if close else "") + "\r\n").encode())
            while sent < size:
                chunk = block[: min(len(block), size - sent)]
                self.wfile.write(chunk)
                sent += len(chunk)
            self.wfile.flush()
        except OSError as e:
            log.write(ev="big_aborted", conn=self.conn_id, id=ident, sent=sent, why=str(e))
            return False
        log.write(ev="big_done", conn=self.conn_id, id=ident, sent=sent)
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", required=True, help="JSON-lines log of every request received")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = Server(("127.0.0.1", args.port), Handler)
    server.log = Log(args.log)
    print("port", server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
