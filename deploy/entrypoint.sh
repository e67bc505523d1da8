#!/bin/sh
# Entry point of the Tend image: the first argument names the role this container plays.
# Every role replaces this shell (exec), so the service is the process that receives SIGTERM and shuts down gracefully.
set -eu

usage() {
    cat <<'USAGE'
usage: entrypoint.sh ROLE [ARGS...]

roles:
  identity | checkin | indicators | notify | audit
                    the service's gRPC server (and its consumers):  tend-<name> serve
  checkin-web       the student check-in pages:                    tend-checkin web
  portal            the web front for staff and students:          tend-portal web
  migrate NAME      apply NAME's database migrations, then exit:   tend-NAME migrate
                    (NAME: identity | checkin | indicators | notify | audit)
  run NAME [ARGS...]
                    any other command of a service, e.g. `run audit verify`:  tend-NAME ARGS...
  healthcheck grpc PORT | healthcheck http PORT PATH
                    exit 0 when the local server answers (for docker compose health checks)
  help              this text
USAGE
}

# Gunicorn workers are separate processes; prometheus_client aggregates their metrics through files in this folder,
# which must start empty (a restarted container in the same pod keeps its emptyDir).
prepare_metrics_dir() {
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/prometheus}"
    rm -rf "${PROMETHEUS_MULTIPROC_DIR:?}"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
}

role="${1:-help}"
if [ "$#" -gt 0 ]; then
    shift
fi

case "$role" in
    identity | checkin | indicators | notify | audit)
        exec "tend-$role" serve "$@"
        ;;
    checkin-web)
        prepare_metrics_dir
        exec tend-checkin web "$@"
        ;;
    portal)
        prepare_metrics_dir
        exec tend-portal web "$@"
        ;;
    migrate)
        name="${1:-}"
        case "$name" in
            identity | checkin | indicators | notify | audit)
                shift
                exec "tend-$name" migrate "$@"
                ;;
            *)
                echo "migrate: expected a service with a database, got '$name'" >&2
                usage >&2
                exit 64
                ;;
        esac
        ;;
    run)
        name="${1:-}"
        case "$name" in
            identity | checkin | indicators | notify | audit | portal)
                shift
                exec "tend-$name" "$@"
                ;;
            *)
                echo "run: expected a service name, got '$name'" >&2
                usage >&2
                exit 64
                ;;
        esac
        ;;
    healthcheck)
        exec python "$(dirname "$0")/healthcheck.py" "$@"
        ;;
    help | -h | --help)
        usage
        ;;
    *)
        echo "unknown role '$role'" >&2
        usage >&2
        exit 64
        ;;
esac
