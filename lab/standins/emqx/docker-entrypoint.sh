#!/bin/bash
## EMQX stand-in entrypoint, at the vendor's path (/usr/bin/docker-entrypoint.sh).
## Like the vendor's: derive the node name from EMQX_NAME@EMQX_HOST unless one is given,
## then run the command (default /opt/emqx/bin/emqx foreground).
set -e

if [[ -z "$EMQX_NODE__NAME" && -z "$EMQX_NODE_NAME" ]]; then
    LOCAL_IP=$(hostname -i | grep -oE '((25[0-5]|(2[0-4]|1[0-9]|[1-9]|)[0-9])\.){3}(25[0-5]|(2[0-4]|1[0-9]|[1-9]|)[0-9])' | head -n 1)
    export EMQX_NAME="${EMQX_NAME:-emqx}"
    export EMQX_HOST="${EMQX_HOST:-$LOCAL_IP}"
    export EMQX_NODE_NAME="$EMQX_NAME@$EMQX_HOST"
fi

exec "$@"
