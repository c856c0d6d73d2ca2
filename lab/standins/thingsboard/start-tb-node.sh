#!/bin/bash
#
# Stand-in for thingsboard/tb-node's /usr/bin/start-tb-node.sh: the same name, path and env
# contract (INSTALL_TB, LOAD_DEMO, UPGRADE_TB + FROM_VERSION, JAVA_OPTS), running the Python
# stand-in instead of the JVM. JAVA_OPTS is accepted and ignored.

set -e

if [ "$INSTALL_TB" == "true" ]; then
    echo "Starting ThingsBoard installation ..."
    exec python3 -m lab.standins.thingsboard
elif [ "$UPGRADE_TB" == "true" ]; then
    echo "Starting ThingsBoard upgrade ..."
    if [[ -z "${FROM_VERSION// }" ]]; then
        echo "FROM_VERSION variable is invalid or unspecified!"
        exit 1
    fi
    # The stand-in has one schema version; "upgrading" re-runs its idempotent install.
    INSTALL_TB=true LOAD_DEMO=false exec python3 -m lab.standins.thingsboard
else
    echo "Starting 'ThingsBoard stand-in' ..."
    exec python3 -m lab.standins.thingsboard
fi
