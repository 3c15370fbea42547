#!/bin/sh
# One-shot `certs` service of docker-compose.yml: the local CA, Mosquitto's server certificate,
# the bridge identity and one certificate per simulated box, in the shared `certs` volume.
#
# Re-running keeps the CA and the box certificates (and so every box's identity); the server and
# bridge certificates are issued again. As root (the compose service), it hands the files to
# their readers: Mosquitto (uid 1883 in eclipse-mosquitto) reads server.*; the bridge and the
# boxes (uid 10001) read the rest. Keys stay mode 0600.
set -eu

dir="${CERT_DIR:-/certs}"
devices="${DEVICES:-20}"
prefix="${DEVICE_PREFIX:-box-}"

# The broker is reached as `mosquitto` on the compose network.
wattstream certs init --dir "$dir" --server-name "${BROKER_HOST:-mosquitto}"

things=""
i=1
while [ "$i" -le "$devices" ]; do
  things="$things $(printf '%s%04d' "$prefix" "$i")"
  i=$((i + 1))
done
# shellcheck disable=SC2086 # one argument per thing
wattstream certs device --dir "$dir" $things

if [ "$(id -u)" = 0 ]; then
  chown -R "${APP_UID:-10001}:${APP_UID:-10001}" "$dir"
  chown "${MOSQUITTO_UID:-1883}:${MOSQUITTO_UID:-1883}" "$dir/server.crt" "$dir/server.key"
fi
echo "certificates for the broker, the bridge and $devices boxes ($prefix...) in $dir" >&2
