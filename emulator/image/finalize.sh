#!/bin/sh
# Runs as root inside the image's root filesystem, last, in both recipes (offline chroot and Dockerfile):
# the sandbox user, the directories the emulator mounts over, the documented command names, cleanup.
set -eu
SITE="$1"  # the site-packages directory of the image's Python

if ! getent group 1000 >/dev/null; then groupadd --gid 1000 user; fi
if ! getent passwd 1000 >/dev/null; then
  useradd --uid 1000 --gid 1000 --home-dir /workspace --no-create-home --shell /bin/bash user
fi
mkdir -p /workspace /files/input /files/output /run/ce-agent
chown 1000:1000 /workspace /files /files/input /files/output /run/ce-agent
chmod 0755 /workspace /files /files/input /files/output
# the documented tool names: `fd` (Debian ships `fdfind`), `7zip` (Debian ships `7zz` and `7z`)
ln -sf /usr/bin/fdfind /usr/local/bin/fd
echo sandbox > /etc/hostname
# test suites of the libraries are never imported at run time and weigh ~190 MB
find "$SITE" -depth -type d \( -name tests -o -name test \) -path "*/site-packages/*/*" -exec rm -rf {} +
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /root/.cache /tmp/* /var/tmp/*
