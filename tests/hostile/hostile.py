#!/usr/bin/env python3
"""Hostile callers against a real `tunnel relay` (issue 10, "Done when").

    hostile.py --tunnel build/ci/apps/tunnel/tunnel campaign
    hostile.py --tunnel ... idle_and_slowloris
    hostile.py --tunnel ... bad_token_flood

Each test starts its own relay, origin and `tunnel connect` on 127.0.0.1,
prints every check it makes with its numbers, and exits 1 when one failed.
"""
import argparse
import os
import sys
import time
import traceback

sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

TESTS = ("campaign", "idle_and_slowloris", "bad_token_flood")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tunnel", required=True, help="the tunnel binary")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--duration", type=float, help="attack phase in seconds (default per test)")
    ap.add_argument("--only", help="campaign: comma-separated attacks to run (malformed, smuggle, "
                    "hop, framing, oversize, pipelined, hangup, stall, garbage, slow)")
    ap.add_argument("test", choices=TESTS)
    args = ap.parse_args()

    harness.raise_nofile(16384)
    checks = harness.Checks(args.test)
    setup = harness.Setup(args.tunnel, keep=args.keep)
    started = time.monotonic()
    try:
        if args.test == "campaign":
            import campaign
            kw = {"duration": args.duration} if args.duration else {}
            if args.only:
                kw["only"] = [k for k in args.only.split(",") if k]
                unknown = set(kw["only"]) - set(campaign.KEYS)
                if unknown:
                    ap.error("unknown attack(s) %s; known: %s" % (sorted(unknown), campaign.KEYS))
            campaign.run(setup, checks, **kw)
        elif args.test == "idle_and_slowloris":
            import idle
            idle.run(setup, checks, **({"hold": args.duration} if args.duration else {}))
        else:
            import flood
            flood.run(setup, checks, **({"seconds": args.duration} if args.duration else {}))
    except Exception:
        traceback.print_exc()
        checks.check("the test ran to the end", False, "the driver raised (above)")
    finally:
        rc = checks.finish()
        print("wall time %.0f s" % (time.monotonic() - started))
        setup.close(failed=rc != 0)
    return rc


if __name__ == "__main__":
    sys.exit(main())
