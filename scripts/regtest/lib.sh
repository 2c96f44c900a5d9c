# shellcheck shell=bash
# Helpers shared by the regtest scripts (sourced, not run).

# Log to the stderr the script started with, also from inside rt_wait (which
# silences the command it retries).
exec {RT_LOGFD}>&2
rt_log() { echo "[regtest $(date +%H:%M:%S)] $*" >&"$RT_LOGFD"; }
rt_die() { rt_log "ERROR: $*"; exit 1; }

# rt_port_busy PORT: true when something listens on 127.0.0.1:PORT.
rt_port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# rt_free_port VAR: sets VAR to a port nobody listens on, not handed out before by this
# shell (RT_PORTS_TAKEN), at random below the kernel's ephemeral range (where
# the daemons' own outgoing connections take ports: a port picked there can
# be taken between the check and the bind).
RT_PORTS_TAKEN=" "
rt_free_port() {
    local var=$1 p tries=0 lo=10000 hi=32767 eph
    if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
        read -r eph _ </proc/sys/net/ipv4/ip_local_port_range
        [ "$eph" -gt $((lo + 1000)) ] && hi=$((eph - 1))
    fi
    while [ $tries -lt 200 ]; do
        p=$(( lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1) ))
        tries=$((tries + 1))
        case "$RT_PORTS_TAKEN" in *" $p "*) continue ;; esac
        rt_port_busy "$p" && continue
        RT_PORTS_TAKEN="$RT_PORTS_TAKEN$p "
        printf -v "$var" %s "$p"
        return 0
    done
    rt_die "no free port found"
}

# rt_start NAME LOGFILE CMD...: start a daemon in its own session, detached
# from the terminal, and record its pid in $RT_DIR/pids/NAME.pid.
rt_start() {
    local name=$1 logfile=$2; shift 2
    mkdir -p "$RT_DIR/pids"
    if command -v setsid >/dev/null 2>&1; then
        # In a non-interactive script a background child is no process group
        # leader, so setsid execs in place: $! is the daemon's own pid.
        setsid "$@" >>"$logfile" 2>&1 </dev/null &
    else
        nohup "$@" >>"$logfile" 2>&1 </dev/null &
    fi
    echo $! >"$RT_DIR/pids/$name.pid"
    rt_log "started $name (pid $!, log $logfile)"
}

# rt_running PID: true when PID runs (a zombie, exited but not yet reaped by
# whoever adopted it, does not count).
rt_running() {
    kill -0 "$1" 2>/dev/null || return 1
    if [ -r "/proc/$1/stat" ]; then
        local stat
        stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
        stat=${stat##*) }
        [ "${stat%% *}" != Z ]
    fi
}

# rt_alive NAME: true when the process of NAME's pid file runs.
rt_alive() {
    local f="$RT_DIR/pids/$1.pid"
    [ -f "$f" ] && rt_running "$(cat "$f")"
}

# rt_stop NAME: stop NAME by its pid (TERM, then KILL after 20s).
rt_stop() {
    local f="$RT_DIR/pids/$1.pid" pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if rt_running "$pid"; then
        # Only a process started from this run dir: a pid can be reused.
        if [ -r "/proc/$pid/cmdline" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$RT_DIR"; then
            rt_log "pid $pid of $1 is no longer ours; not stopping it"
            rm -f "$f"
            return 0
        fi
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 200); do
            rt_running "$pid" || break
            sleep 0.1
        done
        if rt_running "$pid"; then
            rt_log "$1 (pid $pid) ignored TERM for 20s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rt_log "stopped $1 (pid $pid)"
    fi
    rm -f "$f"
}

# rt_wait SECONDS WHAT CMD...: retry CMD every 0.2s until it succeeds.
rt_wait() {
    local secs=$1 what=$2; shift 2
    local end=$(( $(date +%s) + secs ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || { rt_log "timed out after ${secs}s waiting for $what"; return 1; }
        sleep 0.2
    done
}

# rt_json_str KEY: first "KEY": "value" of the JSON on stdin (lncli's
# indented output puts one key on a line).
rt_json_str() { sed -n "s/^[[:space:]]*\"$1\": \"\\([^\"]*\\)\".*/\\1/p" | head -n1; }
# rt_json_val KEY: first "KEY": value (number or bool, or quoted number).
rt_json_val() { sed -n "s/^[[:space:]]*\"$1\": \"\\{0,1\\}\\([^\",]*\\)\"\\{0,1\\},\\{0,1\\}[[:space:]]*\$/\\1/p" | head -n1; }
