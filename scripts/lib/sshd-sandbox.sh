# Throwaway OpenSSH server on 127.0.0.1 for the demo and the benchmarks.
# Source this file, then: sandbox_start DIR  -> sets SANDBOX_PORT, SANDBOX_KEY,
# SANDBOX_KNOWN_HOSTS, SANDBOX_SSH_CONFIG (Host alias "sandbox"); sandbox_stop.
# Own host key and client key in DIR, UsePAM no, SetEnv SHLVL=1 (ARCHITECTURE §7).

# A random high port nobody listens on (sshd may still lose a race for it: sandbox_start retries).
sandbox_free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
}

sandbox_start() {
    local attempt
    for attempt in 1 2 3 4 5; do
        sandbox_start_once "$1" && return 0
    done
    return 1
}

sandbox_start_once() {
    local dir=$1
    mkdir -p "$dir" /run/sshd
    chmod 700 "$dir"
    [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
    [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/id_ed25519"
    cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
    SANDBOX_PORT=$(sandbox_free_port)
    cat > "$dir/sshd_config" <<CFG
Port $SANDBOX_PORT
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
AuthorizedKeysFile $dir/authorized_keys
PidFile none
UsePAM no
StrictModes no
PermitRootLogin yes
PasswordAuthentication no
SetEnv SHLVL=1
MaxStartups 200
MaxSessions 64
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel ERROR
CFG
    /usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>"$dir/sshd.log" &
    SANDBOX_PID=$!
    echo "[127.0.0.1]:$SANDBOX_PORT $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" > "$dir/known_hosts"
    SANDBOX_KEY=$dir/id_ed25519
    SANDBOX_KNOWN_HOSTS=$dir/known_hosts
    SANDBOX_SSH_CONFIG=$dir/ssh_config
    cat > "$SANDBOX_SSH_CONFIG" <<CFG
Host sandbox
    HostName 127.0.0.1
    Port $SANDBOX_PORT
    User root
    IdentityFile $SANDBOX_KEY
    IdentitiesOnly yes
    UserKnownHostsFile $SANDBOX_KNOWN_HOSTS
    GlobalKnownHostsFile /dev/null
    BatchMode yes
CFG
    local i
    for i in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$SANDBOX_PORT") 2>/dev/null; then return 0; fi
        kill -0 "$SANDBOX_PID" 2>/dev/null || { cat "$dir/sshd.log" >&2; return 1; }
        sleep 0.02
    done
    echo "sshd did not start listening on port $SANDBOX_PORT" >&2
    return 1
}

sandbox_stop() {
    [ -n "${SANDBOX_PID:-}" ] && kill "$SANDBOX_PID" 2>/dev/null && wait "$SANDBOX_PID" 2>/dev/null
    SANDBOX_PID=
}
