/**
 * The guest's /init (busybox sh). It never changes per test: everything a job needs arrives on the
 * `job` 9p share (vm.conf, script.sh), so one cached initramfs serves every VM.
 *
 * Sequence: load the virtio PCI + 9p modules, mount the job share, load the module groups vm.conf
 * asks for, configure eth0 if asked, mount the host root read-only over 9p, give it fresh proc, sys,
 * dev, /tmp and /dev/shm (the repository stays visible when it lives under the host's /tmp), bind
 * the job share at its own host path (so paths agree on both sides),
 * chroot and run script.sh with the host's /bin/sh, store the exit status, power off.
 *
 * Every step prints `ringwire-guest: <step> @<uptime>` on the console: the harness reads boot
 * timings and failures from those lines, and "FAILED:" lines name the step that broke.
 */
export const GUEST_MARK = 'ringwire-guest:';

export const GUEST_INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev
exec </dev/null >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
say() { echo "${GUEST_MARK} $* @$(cut -d' ' -f1 /proc/uptime)"; }
fail() { say "FAILED: $*"; poweroff -f; }
load() {
  [ -f "/lib/modules/$1.order" ] || fail "unknown module group $1"
  for m in $(cat "/lib/modules/$1.order"); do
    [ -d "/sys/module/$m" ] || insmod "/lib/modules/$m.ko" || fail "insmod $m"
  done
}
say init
if grep -q ringwire.probe /proc/cmdline; then say probe-ok; poweroff -f; fi
load base
opts=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o "$opts" job /mnt/job || fail "mount the job share"
. /mnt/job/vm.conf
for g in $RW_MODULES; do load "$g"; done
ip link set lo up
if [ -n "$RW_NET_ADDR" ]; then
  ip link set eth0 up && ip addr add "$RW_NET_ADDR" dev eth0 || fail "configure eth0"
  [ -z "$RW_NET_GW" ] || ip route add default via "$RW_NET_GW" || fail "add the default route"
fi
R=/mnt/host
mount -t 9p -o "$opts,ro,cache=loose" host $R || fail "mount the host share"
mkdir -p /mnt/host-tmp && mount -o bind $R/tmp /mnt/host-tmp || fail "keep a view of the host's /tmp"
mount -t proc proc $R/proc && mount -t sysfs sys $R/sys && mount -t devtmpfs dev $R/dev &&
  mkdir -p $R/dev/shm && mount -t tmpfs shm $R/dev/shm && mount -t tmpfs tmp $R/tmp ||
  fail "mount proc, sys, dev, /dev/shm and /tmp in the chroot"
# The guest's fresh /tmp hides the host's; a repository checked out under /tmp (CI clones) must stay visible.
case "$RW_REPO" in /tmp/*)
  mkdir -p "$R$RW_REPO" && mount -o bind "/mnt/host-tmp\${RW_REPO#/tmp}" "$R$RW_REPO" || fail "bind the repository at $RW_REPO";;
esac
mkdir -p "$R$RW_JOB" 2>/dev/null
mount -o bind /mnt/job "$R$RW_JOB" || fail "bind the job share at $RW_JOB"
say job-start
chroot $R /bin/sh "$RW_JOB/script.sh"
status=$?
echo $status > /mnt/job/exit-status
sync
say "job-exit $status"
poweroff -f
`;
