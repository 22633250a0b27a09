#!/usr/bin/env bash
# Interleaved runs of the managed engine and the native OpenSSL floor (native/handshake.c), same configuration,
# same certificate types, one thread each, in memory. Prints every run; compare the medians.
# Usage: perf/MegaPipe.Tls.Benchmarks/compare-native.sh [runs=3] [handshakes=2000]
set -euo pipefail
cd "$(dirname "$0")"
runs=${1:-3}
count=${2:-2000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 native/handshake.c -o "$work/handshake" -lssl -lcrypto
openssl ecparam -name prime256v1 -genkey -noout -out "$work/ec.key" 2>/dev/null
openssl req -new -x509 -key "$work/ec.key" -out "$work/ec.crt" -subj /CN=localhost -days 2 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/rsa.key" -out "$work/rsa.crt" -subj /CN=localhost -days 2 2>/dev/null
dotnet build -c Release -o "$work/managed" >/dev/null
for i in $(seq "$runs"); do
  echo "== run $i"
  for args in "" "--tls12" "--resume" "--tls12 --resume"; do
    echo -n "managed ECDSA ${args:-(TLS 1.3 full)}: "
    dotnet "$work/managed/MegaPipe.Tls.Benchmarks.dll" --profile-handshakes --count "$count" $args | tail -1
    native_args=$(echo "$args" | sed 's/--tls12/tls12/; s/--resume/resume/')
    "$work/handshake" "$work/ec.crt" "$work/ec.key" $native_args "$count"
  done
  echo -n "managed RSA (TLS 1.3 full): "
  dotnet "$work/managed/MegaPipe.Tls.Benchmarks.dll" --profile-handshakes --count "$count" --rsa | tail -1
  "$work/handshake" "$work/rsa.crt" "$work/rsa.key" "$count"
done
