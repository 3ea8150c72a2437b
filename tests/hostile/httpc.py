"""A raw HTTP/1.1 client over plain sockets: it sends exactly the bytes it is
given (hostile requests included) and parses responses strictly enough to
check status codes and bodies byte for byte."""
import select
import socket
import time

RELAY_HOST = "127.0.0.1"


class Closed(Exception):
    """The peer closed (or reset) the connection; `received` bytes came first."""

    def __init__(self, msg, received=0):
        super().__init__(msg)
        self.received = received


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)]
        self.body = body

    def header(self, name):
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else None

    def wants_close(self):
        return "close" in (self.header("Connection") or "").lower()

    def __repr__(self):
        return "<%d %s, %d body bytes>" % (self.status, self.reason, len(self.body))


def open_socket(port, src_ip="127.0.0.1", timeout=8.0, rcvbuf=None, host=RELAY_HOST):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if src_ip != "127.0.0.1":
            s.bind((src_ip, 0))
        s.settimeout(timeout)
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


class Conn:
    """One connection; responses are read from an internal buffer so
    pipelined responses split across reads parse correctly."""

    def __init__(self, port, src_ip="127.0.0.1", timeout=8.0, rcvbuf=None):
        self.sock = open_socket(port, src_ip, timeout, rcvbuf)
        self.buf = bytearray()
        self.received = 0
        self.uses = 0
        self.closed = False

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise Closed("send failed: %s" % e, self.received)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no complete response in time (%d bytes buffered)" % len(self.buf))
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(262144)
        except socket.timeout:
            raise TimeoutError("no complete response in time (%d bytes buffered)" % len(self.buf))
        except OSError as e:
            raise Closed("recv failed: %s" % e, self.received)
        if not data:
            raise Closed("peer closed", self.received)
        self.received += len(data)
        self.buf += data

    def _line(self, deadline, limit=65536):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            if len(self.buf) > limit:
                raise ValueError("response line longer than %d bytes" % limit)
            self._fill(deadline)

    def _exact(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_response(self, timeout=8.0, head_request=False):
        """The next response (1xx interim responses other than 101 skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            status_line = self._line(deadline).decode("latin-1")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise ValueError("bad status line %r" % status_line[:100])
            status = int(parts[1])
            headers = []
            while True:
                line = self._line(deadline).decode("latin-1")
                if not line:
                    break
                name, _, value = line.partition(":")
                headers.append((name, value.strip()))
            if 100 <= status < 200 and status != 101:
                continue
            break
        resp = Response(status, parts[2] if len(parts) > 2 else "", headers, b"")
        if head_request or status in (101, 204, 304):
            return resp
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if "chunked" in te:
            body = bytearray()
            while True:
                size = int(self._line(deadline).split(b";")[0], 16)
                if size == 0:
                    while self._line(deadline):
                        pass
                    break
                body += self._exact(size, deadline)
                if self._exact(2, deadline) != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
            resp.body = bytes(body)
        elif cl is not None:
            resp.body = self._exact(int(cl), deadline)
        else:  # delimited by the connection's end
            try:
                while True:
                    self._fill(deadline)
            except Closed:
                pass
            resp.body = bytes(self.buf)
            self.buf.clear()
            self.closed = True
        return resp

    def request(self, data, timeout=8.0, head_request=False):
        self.uses += 1
        self.send(data)
        return self.read_response(timeout, head_request)


def exchange(port, data, src_ip="127.0.0.1", timeout=5.0, interleave=False):
    """Sends `data` on a new connection and reads one response.

    Returns (response or None, note). None means the relay closed or reset the
    connection without a complete response (note says how). With interleave,
    the request is sent while reading, so a server that answers early (413)
    and stops reading is seen rather than deadlocking our send."""
    try:
        c = Conn(port, src_ip, timeout)
    except OSError as e:
        return None, "connect failed: %s" % e
    try:
        if interleave:
            return _interleaved(c, data, timeout)
        try:
            c.send(data)
        except Closed as e:
            pass  # the answer may already be readable
        return c.read_response(timeout), "ok"
    except Closed as e:
        return None, "closed without a response (%s)" % e
    except TimeoutError as e:
        return None, "timeout: %s" % e
    except ValueError as e:
        return None, "unparseable response: %s" % e
    finally:
        c.close()


def _interleaved(c, data, timeout):
    deadline = time.monotonic() + timeout
    view = memoryview(data)
    c.sock.setblocking(False)
    while view:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, w, _ = select.select([c.sock], [c.sock], [], left)
        if r:
            break  # the server answered (or closed) before taking the whole request
        if w:
            try:
                n = c.sock.send(view[:65536])
            except BlockingIOError:
                continue
            except OSError:
                break
            view = view[n:]
    c.sock.setblocking(True)
    try:
        return c.read_response(max(0.5, deadline - time.monotonic())), "ok"
    except Closed as e:
        return None, "closed without a response (%s)" % e


def wait_closed(sock, timeout):
    """Seconds until the peer closed `sock` (EOF or reset), draining what it
    sends; None when it stayed open for `timeout`. Returns (seconds, data)."""
    start = time.monotonic()
    data = bytearray()
    while True:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            return None, bytes(data)
        r, _, _ = select.select([sock], [], [], min(left, 0.5))
        if not r:
            continue
        try:
            chunk = sock.recv(65536)
        except OSError:
            return time.monotonic() - start, bytes(data)
        if not chunk:
            return time.monotonic() - start, bytes(data)
        data += chunk


def status_of(raw):
    """The status code at the start of raw response bytes, or None."""
    if raw.startswith(b"HTTP/1.") and len(raw) >= 12 and raw[9:12].isdigit():
        return int(raw[9:12])
    return None
