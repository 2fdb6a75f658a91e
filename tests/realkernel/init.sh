#!/bin/busybox sh
# The guest's /init (tests/realkernel/vm.py puts it in the initramfs with busybox and the
# modules of the 9p root): the host's / read-only at the same paths, the guest's own /proc,
# /sys, /dev and a writable /run, /var/lib, /var/log, /var/tmp; the writable share on
# /run/rk; run /run/rk/run.sh as root there, leave its status in /run/rk/rc, power off.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do
    insmod "/modules/$m.ko" || echo "rk-init: insmod $m failed"
done
if ! mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /host; then
    echo "rk-init: cannot mount the host's files"
    poweroff -f
fi
R=/newroot
mount -t tmpfs -o size=64m,mode=0755 root "$R"
for x in /host/* /host/.[!.]*; do
    n=${x#/host/}
    [ -e "$x" ] || [ -L "$x" ] || continue
    case $n in
        proc|sys|dev|run|mnt|media|lost+found) mkdir -p "$R/$n"; continue;;
    esac
    if [ -L "$x" ]; then
        ln -s "$(readlink "$x")" "$R/$n"
    elif [ -d "$x" ]; then
        mkdir -p "$R/$n" && mount --bind "$x" "$R/$n"
    fi
done
mount -t proc proc "$R/proc"
mount -t sysfs sys "$R/sys"
mount -t devtmpfs dev "$R/dev"
for x in run var/lib var/log var/tmp; do
    mount -t tmpfs -o mode=0755 "guest-$x" "$R/$x" || echo "rk-init: no tmpfs on /$x"
done
mkdir -p "$R/run/rk" "$R/run/irqbalance"
chmod 1777 "$R/var/tmp"
if ! mount -t 9p -o trans=virtio,version=9p2000.L,rw,cache=none rkshare "$R/run/rk"; then
    echo "rk-init: cannot mount the share"
    poweroff -f
fi
echo "rk-init: ready, $(grep -c ^processor /proc/cpuinfo) CPUs"
chroot "$R" /bin/sh -c 'cd / && exec /bin/sh /run/rk/run.sh' </dev/console >/dev/console 2>&1
echo $? >"$R/run/rk/rc"
sync
poweroff -f
