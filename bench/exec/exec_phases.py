#!/usr/bin/env python3
"""Per-phase timeline of one fresh SSH client run (tunnel exec or ssh), from strace.

    bench/exec/exec_phases.py [--runs N] -- CLIENT ARGS...

Runs the client N times under `strace -f -ttt` (network and exec/exit calls
only) and prints, per phase, the median of the milliseconds between the
events that bound it. strace slows the client itself down (each traced call
costs a few microseconds), so compare phases between clients traced the same
way, not with untraced wall times. The phases are counted in SSH packets as
both clients send them (banner, KEXINIT, ECDH, NEWKEYS + service request,
userauth, channel open, exec) and assume public-key auth that succeeds.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

LINE = re.compile(r'(\d+)\s+(\d+\.\d+)\s+(.*)')
IO = re.compile(r'(sendto|recvfrom|read|write)\((\d+), "(.*?)"(?:\.\.\.)?, \d+.*= (-?\d+).*<(\d+\.\d+)>')


def events(path):
    """(time, kind) for start, tcp connect, every send/recv on the SSH socket, exit."""
    out, sock = [], None
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            t, rest = float(m.group(2)), m.group(3)
            if rest.startswith('execve(') and not out:
                out.append((t, 'start', 0))
            elif rest.startswith('exit_group('):
                out.append((t, 'exit', 0))
            elif rest.startswith('connect(') and 'AF_INET' in rest and sock is None:
                sock = int(rest[8:rest.index(',')])
                out.append((t, 'connect', 0))
            elif sock is not None:
                io = IO.match(rest)
                # libssh writes through a dup of the socket: any fd from it on.
                if io and int(io.group(2)) >= sock and int(io.group(4)) > 0:
                    if io.group(3).startswith('-----BEGIN') or io.group(3).startswith('ssh-'):
                        continue  # a key file, not the socket
                    if io.group(1) == 'read' and int(io.group(4)) == 1 and out[-1][1] == 'recv':
                        continue  # ssh reads the server's banner one byte at a time
                    # -ttt stamps a call's start: a blocking read (ssh's)
                    # returns data only at its end.
                    n = int(io.group(4))
                    if io.group(1) in ('sendto', 'write'):
                        out.append((t, 'send', n))
                    else:
                        out.append((t + float(io.group(5)), 'recv', n))
    return out


def phases(ev):
    """Milliseconds per phase, from the order and sizes of sends and receives.

    Sizes assume chacha20-poly1305 (as bench/exec forces) and an ed25519 host
    key; a run whose reads do not fit is skipped."""
    t = {k: None for k in ('start', 'connect', 'exit')}
    sends, recvs = [], []
    for when, kind, n in ev:
        if kind in t and t[kind] is None:
            t[kind] = when
        elif kind == 'send':
            sends.append(when)
        elif kind == 'recv':
            recvs.append((when, n))
    if None in t.values() or len(sends) < 6 or not recvs:
        return None
    after = lambda x, size=None: next(
        (r for r, n in recvs if r > x and (size is None or n == size)), None)
    banner_in = after(sends[0])
    kex_done = sends[3]  # our NEWKEYS: banner, KEXINIT, ECDH init, NEWKEYS
    # USERAUTH_SUCCESS: 28 bytes, or 284 when read together with the 256-byte
    # hostkeys-00@openssh.com notice that OpenSSH sends right after it.
    auth_done = after(kex_done, 28) or after(kex_done, 284)
    if auth_done is None:
        return None
    # The channel is open when the client sends its next request (the exec):
    # the confirmation is the last read before that send.
    open_sent = next((x for x in sends if x > auth_done), None)
    exec_sent = next((x for x in sends if open_sent and x > open_sent), None)
    open_done = max((r for r, _ in recvs if exec_sent and auth_done < r < exec_sent), default=None)
    last_recv = max(r for r, _ in recvs if r < t['exit'])
    if None in (banner_in, auth_done, open_done):
        return None
    return {
        'process start to connect()': t['connect'] - t['start'],
        'connect() to server banner': banner_in - t['connect'],
        'key exchange (banner to NEWKEYS)': kex_done - banner_in,
        'authentication (to USERAUTH_SUCCESS)': auth_done - kex_done,
        'channel open (to confirmation)': open_done - auth_done,
        'exec to exit status': last_recv - open_done,
        'exit status to process exit': t['exit'] - last_recv,
        'total': t['exit'] - t['start'],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--runs', type=int, default=10)
    ap.add_argument('command', nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ['--'] else a.command
    if not cmd:
        ap.error('give the client command after --')
    got = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(a.runs):
            trace = os.path.join(d, f'run{i}')
            subprocess.run(['strace', '-f', '-ttt', '-T', '--seccomp-bpf', '-o', trace, '-e',
                            'trace=execve,connect,sendto,recvfrom,read,write,exit_group'] + cmd,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
            p = phases(events(trace))
            if p:
                got.append(p)
    if not got:
        sys.exit('no run could be read')
    print(f'{len(got)} runs, medians (ms):')
    for k in got[0]:
        print(f'  {k:36s} {statistics.median(r[k] for r in got) * 1000:8.2f}')


if __name__ == '__main__':
    main()
