// The parts of bench/relay, each a comparison against a named peer run in
// one process with its rounds interleaved (shared/PEERS.md):
//   http  keep-alive and `Connection: close` request rates (wrk) and p99 at
//         ~1,000 req/s: tunnel relay + tunnel connect against `ssh -L`,
//         both in front of one nginx;
//   bulk  512 MiB through one tunnel against `ssh -L` and websockify + ssh;
//   idle  the relay's memory per idle tunnel (N `tunnel connect` processes);
//   cost  instructions, syscalls and wake-ups per request in the relay and
//         in `tunnel connect` (counts, not rates: stable on a loaded machine).
#pragma once

namespace tunnel::bench {

int run_http_part(int argc, char** argv);
int run_bulk_part(int argc, char** argv);
int run_idle_part(int argc, char** argv);
int run_cost_part(int argc, char** argv);

}  // namespace tunnel::bench
