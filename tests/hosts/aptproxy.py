#!/usr/bin/python3
"""apt proxy for the test hosts: listens only on the harness bridge address and
forwards plain-HTTP GETs to deb.debian.org and nothing else. Package files
(.deb, immutable per version) are kept in CACHE_DIR across runs; indexes are
always fetched fresh.  usage: aptproxy.py LISTEN_ADDR PORT CACHE_DIR"""
import hashlib
import os
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LISTEN, PORT, CACHE = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ALLOWED = {"deb.debian.org"}
MAX_BODY = 512 * 1024 * 1024
os.makedirs(CACHE, exist_ok=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head=False):
        url = urlsplit(self.path)
        if url.scheme != "http" or url.hostname not in ALLOWED or url.port not in (None, 80):
            self.send_error(403, "the test-host proxy only forwards to http://deb.debian.org")
            return
        cached = None
        if url.path.endswith(".deb"):
            cached = os.path.join(CACHE, hashlib.sha256(self.path.encode()).hexdigest() + ".deb")
            if os.path.exists(cached):
                with open(cached, "rb") as f:
                    self.reply(200, f.read(), "application/vnd.debian.binary-package", None, head)
                return
        req = urllib.request.Request(self.path, method="HEAD" if head else "GET",
                                     headers={"User-Agent": "tunnel-testhost-aptproxy"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                data = r.read(MAX_BODY) if not head else b""
                code, ctype, modified = r.status, r.headers.get("Content-Type", "application/octet-stream"), r.headers.get("Last-Modified")
        except urllib.error.HTTPError as e:
            self.send_error(e.code)
            return
        except Exception as e:  # DNS, refused, timeout: tell apt, keep serving
            self.send_error(502, str(e)[:200])
            return
        if cached and code == 200 and not head:
            tmp = "%s.%d" % (cached, threading.get_ident())
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, cached)
        self.reply(code, data, ctype, modified, head)

    def reply(self, code, data, ctype, modified, head):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if modified:
            self.send_header("Last-Modified", modified)
        self.end_headers()
        if not head:
            self.wfile.write(data)


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer((LISTEN, PORT), Handler).serve_forever()
