#!/bin/bash
# Builds the test-host root filesystem into $1: Debian 12 minbase with systemd,
# sshd and what the ops modules manage (sudo, ufw, nftables, iptables).
# The harness caches the result as a tarball keyed on this file's sha256, so any
# change here (package list, preparation) builds a new image.
set -euo pipefail
target=$1
mirror=${TUNNEL_TESTHOSTS_MIRROR:-http://deb.debian.org/debian}
packages=openssh-server,systemd,systemd-sysv,sudo,iproute2,dbus,libpam-systemd,procps,ufw,nftables,iptables,ca-certificates
debootstrap --variant=minbase --include="$packages" bookworm "$target" "$mirror" >"$target.log" 2>&1 ||
  { tail -30 "$target.log" >&2; exit 1; }

# Per-host state is generated at start: machine id, host keys, authorized_keys.
: >"$target/etc/machine-id"
rm -f "$target"/etc/ssh/ssh_host_*
echo "127.0.1.1 testhost" >>"$target/etc/hosts"
# apt: all suites, through the harness proxy (configured per host), no translations.
cat >"$target/etc/apt/sources.list" <<SRC
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SRC
echo 'Acquire::Languages "none";' >"$target/etc/apt/apt.conf.d/99testhost-nolang"
rm -f "$target"/var/cache/apt/archives/*.deb
rm -rf "$target"/var/lib/apt/lists/*
# Nothing may try to reach the outside on boot; ufw starts disabled.
chroot "$target" systemctl mask systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || true
# Fast logins: no DNS lookups of clients, no MOTD scripts.
echo "UseDNS no" >"$target/etc/ssh/sshd_config.d/00-testhost.conf"
rm -f "$target/etc/update-motd.d/"* "$target/etc/motd"
