#!/usr/bin/env bash
# Installs the Debian packages that the tests and the lab run for real:
# ipmi_sim (openipmi) as a BMC, ipmitool and FreeIPMI as reference clients,
# nats-server as the message bus, OpenSSH/openssl as console clients,
# Chromium for the browser console test, systemd-analyze to check the unit,
# lighttpd (with its TLS module) as a BMC's web server for the Redfish transport.
# Skips what is already there.
set -euo pipefail
need=()
command -v ipmi_sim >/dev/null || need+=(openipmi)
command -v ipmitool >/dev/null || need+=(ipmitool)
command -v ipmipower >/dev/null || need+=(freeipmi-tools)
command -v nats-server >/dev/null || need+=(nats-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v ss >/dev/null || need+=(iproute2)       # ss: a test reads the kernel's view of a connection
command -v systemd-analyze >/dev/null || need+=(systemd)
[ -x /usr/bin/time ] || need+=(time)   # GNU time: peak RSS in bench/cli-startup.ts
command -v chromium >/dev/null || need+=(chromium)
# lighttpd, AMI MegaRAC's web server, as a peer of the Redfish transport; its TLS module is only a
# Recommends of the package, which --no-install-recommends leaves out
[ -e /usr/lib/lighttpd/mod_openssl.so ] || need+=(lighttpd lighttpd-mod-openssl)
new_lighttpd=0
[ -x /usr/sbin/lighttpd ] || command -v lighttpd >/dev/null || new_lighttpd=1
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing Debian packages: ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # the tests start lighttpd themselves; on a host with systemd the package just installed would
  # run Debian's own on port 80 (one that was there before is left as it was)
  if [ "$new_lighttpd" = 1 ] && [ -d /run/systemd/system ]; then
    systemctl disable --now lighttpd >/dev/null 2>&1 || true
  fi
fi
