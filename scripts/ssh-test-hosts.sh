#!/usr/bin/env bash
# Make (or remove) five test hosts for the ssh platform: network namespaces on a bridge in
# 198.18.0.0/24, each running its own OpenSSH server with a generated host key and one
# authorised test key. Root, iproute2, iptables and openssh-server (Debian) are needed.
#
#   scripts/ssh-test-hosts.sh up DIR [--count N]   # prints DIR/hosts.toml
#   scripts/ssh-test-hosts.sh down DIR             # removes exactly what `up` made
#
# Then: HARNESS_SSH_HOSTS=DIR/hosts.toml harness suite suites/ssh.toml
# The work is tests/sshhosts.py's (the pytest module tests/test_platform_ssh.py uses it too).
set -euo pipefail
exec python3 "$(dirname "$0")/../tests/sshhosts.py" "$@"
