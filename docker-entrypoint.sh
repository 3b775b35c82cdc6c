#!/bin/sh
# The container's entrypoint. Started as root, it gives DATA_DIR to the app user (a volume mounted there,
# e.g. a fresh Fly volume, is owned by root and hides the image's own chown), then runs the command as
# that user (APP_UID, default 10001) with no supplementary groups. Started as any other user, it only
# runs the command.
set -eu

APP_UID="${APP_UID:-10001}"
APP_GID="${APP_GID:-$APP_UID}"
DATA_DIR="${DATA_DIR:-/data}"

if [ "$(id -u)" != 0 ]; then
    exec "$@"
fi

mkdir -p "$DATA_DIR"
# Anything in it not the app user's (an empty volume's root, or files a root shell created) is handed over.
if [ -n "$(find "$DATA_DIR" ! -user "$APP_UID" -print -quit)" ]; then
    chown -R "$APP_UID:$APP_GID" "$DATA_DIR"
fi
chmod 0700 "$DATA_DIR"

HOME="$(getent passwd "$APP_UID" | cut -d: -f6)"
export HOME="${HOME:-$DATA_DIR}"
exec setpriv --reuid="$APP_UID" --regid="$APP_GID" --clear-groups -- "$@"
