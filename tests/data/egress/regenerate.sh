#!/bin/sh
# Regenerate ruleset.hex: the netlink batch nft sends for ruleset.nft, captured with strace in
# a throwaway network namespace (needs root, nft, strace and python3). The unit tests of
# src/egress/ruleset.rs compare the launcher's own encoding with it byte for byte.
set -eu
cd "$(dirname "$0")"
trace=$(mktemp)
trap 'rm -f "$trace"' EXIT
unshare --net strace -f -e trace=sendmsg -e write=3 -o "$trace" nft -f ruleset.nft
python3 - "$trace" > ruleset.hex <<'PY'
import re, sys
data = bytearray()
for line in open(sys.argv[1]):
    m = re.match(r'\s*\|\s*[0-9a-f]{5}\s+((?:[0-9a-f]{2}\s+)+)', line)
    if m:
        data += bytes.fromhex(''.join(m.group(1).split()))
# One message per line: the nlmsghdr's length is its first four bytes (little-endian).
while data:
    length = int.from_bytes(data[:4], 'little')
    print(data[:length].hex())
    data = data[length:]
PY
