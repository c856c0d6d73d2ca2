#!/bin/bash
## TimescaleDB stand-in entrypoint (test fixture). It keeps the documented contract of the
## official image's /usr/local/bin/docker-entrypoint.sh (docker-library/postgres, which
## timescale/timescaledb builds on), written afresh for Debian's PostgreSQL:
##   - a first argument that starts with "-" means: postgres <arguments>
##   - `postgres ...` as root: prepare PGDATA and /var/run/postgresql, then re-run as postgres
##   - on an empty PGDATA: initdb with superuser POSTGRES_USER (default postgres) and password
##     POSTGRES_PASSWORD or the content of POSTGRES_PASSWORD_FILE (required, unless
##     POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_INITDB_ARGS; then a line
##     `host all all all <POSTGRES_HOST_AUTH_METHOD, default password_encryption = scram-sha-256>`
##     in pg_hba.conf (local socket and loopback stay `trust`, as initdb makes them); then a
##     socket-only temporary server creates POSTGRES_DB (default POSTGRES_USER) and runs
##     /docker-entrypoint-initdb.d/* (*.sh executed or sourced, *.sql and *.sql.gz through
##     psql); then the temporary server stops
##   - finally exec the command (`postgres -c key=value ...` takes the settings)
## The vendor image's TimescaleDB-only variables (TIMESCALEDB_TELEMETRY, NO_TS_TUNE,
## TS_TUNE_*) are accepted and ignored: there is no extension and no timescaledb-tune here.
set -Eeo pipefail

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

# file_env VAR [DEFAULT]: VAR from the environment, or from the file named by VAR_FILE.
file_env() {
    local var="$1" file_var="${1}_FILE" value="${2:-}"
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        log "error: both $var and $file_var are set (but are exclusive)"
        exit 1
    fi
    if [ -n "${!var:-}" ]; then
        value="${!var}"
    elif [ -n "${!file_var:-}" ]; then
        value="$(< "${!file_var}")"
    fi
    export "$var"="$value"
    unset "$file_var"
}

setup_env() {
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    : "${POSTGRES_HOST_AUTH_METHOD:=}"
    : "${PGDATA:=/var/lib/postgresql/data}"
    export PGDATA
}

wants_help() {
    local arg
    for arg; do
        case "$arg" in
            -'?' | --help | --describe-config | -V | --version) return 0 ;;
        esac
    done
    return 1
}

# psql against the temporary server (socket only, trust), stopping at the first error.
run_sql() {
    local args=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [ -n "$POSTGRES_DB" ]; then
        args+=(--dbname "$POSTGRES_DB")
    fi
    PGHOST='' PGHOSTADDR='' "${args[@]}" "$@"
}

initialise() {
    # $@: the server's arguments (without the leading "postgres")
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        log "Error: Database is uninitialized and superuser password is not specified."
        log "       Set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (or POSTGRES_HOST_AUTH_METHOD=trust, not recommended)."
        exit 1
    fi
    ls /docker-entrypoint-initdb.d/ > /dev/null

    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the vendor image
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS

    local auth
    auth="$(postgres -C password_encryption "$@")"
    : "${POSTGRES_HOST_AUTH_METHOD:=$auth}"
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"

    export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
    local options=''
    if [ "$#" -gt 0 ]; then
        options="$(printf '%q ' "$@")"
    fi
    PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" \
        -o "$options -c listen_addresses='' -p ${PGPORT:-5432}" -w start

    if [ "$POSTGRES_DB" != postgres ] \
        && [ -z "$(POSTGRES_DB='' run_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only \
            <<< "SELECT 1 FROM pg_database WHERE datname = :'db';")" ]; then
        POSTGRES_DB='' run_sql --dbname postgres --set db="$POSTGRES_DB" <<< 'CREATE DATABASE :"db";'
    fi

    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then
                    log "running $f"
                    "$f"
                else
                    log "sourcing $f"
                    # shellcheck disable=SC1090
                    . "$f"
                fi
                ;;
            *.sql) log "running $f"; run_sql -f "$f" ;;
            *.sql.gz) log "running $f"; gunzip -c "$f" | run_sql ;;
            */\*) ;;
            *) log "ignoring $f" ;;
        esac
    done

    PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGPASSWORD
    log "PostgreSQL init process complete; ready for start up."
}

main() {
    if [ "${1:0:1}" = '-' ]; then
        set -- postgres "$@"
    fi

    if [ "$1" = postgres ] && ! wants_help "$@"; then
        setup_env
        mkdir -p "$PGDATA"
        chmod 0700 "$PGDATA" || :
        if [ "$(id -u)" = 0 ]; then
            find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
            mkdir -p /var/run/postgresql
            chown postgres:postgres /var/run/postgresql
            chmod 3775 /var/run/postgresql
            exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
        fi

        for ignored in TIMESCALEDB_TELEMETRY NO_TS_TUNE TS_TUNE_MEMORY TS_TUNE_NUM_CPUS \
            TS_TUNE_MAX_CONNS TS_TUNE_MAX_BG_WORKERS TS_TUNE_WAL_DISK_SIZE; do
            if [ -n "${!ignored:-}" ]; then
                log "stand-in: $ignored is ignored (no TimescaleDB extension, no timescaledb-tune here)"
            fi
        done

        if [ -s "$PGDATA/PG_VERSION" ]; then
            log "PostgreSQL Database directory appears to contain a database; Skipping initialization"
        else
            initialise "${@:2}"
        fi
        log "stand-in for timescale/timescaledb: PostgreSQL $(postgres --version | awk '{print $3}'), WITHOUT the timescaledb extension"
    fi

    exec "$@"
}

main "$@"
