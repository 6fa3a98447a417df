# shellcheck shell=bash
# Shared helpers for tools/run, tests/run and bench/scale. Source it; it defines
# functions only (plus QS_ROOT and QS_PACKAGES) and changes no shell options.
#
#   qs_install_deps           install the Debian 12 packages we need that are missing
#   qs_build DIR [MESONARGS]  meson setup (or reconfigure) DIR, then ninja -C DIR
#   qs_bus_start DIR          start a private, permissive system-like dbus-daemon;
#                             sets QS_BUS_ADDRESS and QS_BUS_PID
#   qs_bus_stop               stop it

QS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Everything needed to build the service, run it, and run every test suite.
# libasan8/libubsan1 are the gcc-12 sanitizer runtimes used by tests/run;
# systemd brings busctl and libglib2.0-bin gdbus (tools/run, examples).
QS_PACKAGES=(
	meson ninja-build gcc pkg-config
	libsystemd-dev libglib2.0-dev libdevmapper-dev
	libblockdev-dev libblockdev-utils-dev libblockdev-lvm-dev
	libblockdev-loop-dev libblockdev-fs-dev
	libasan8 libubsan1
	dbus dbus-daemon polkitd systemd libglib2.0-bin
	python3-dbusmock python3-gi
	btrfs-progs xfsprogs util-linux strace e2fsprogs mount
	qemu-system-x86 linux-image-amd64 busybox-static kmod cpio lvm2 thin-provisioning-tools
)

qs_log() { printf '==> %s\n' "$*" >&2; }

qs_missing_packages() {
	local p status
	for p in "${QS_PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
		[[ $status == ii* ]] || printf '%s\n' "$p"
	done
}

qs_install_deps() {
	local -a missing
	mapfile -t missing < <(qs_missing_packages)
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		qs_log "missing packages: ${missing[*]} (run as root, or install them)"
		return 1
	fi
	qs_log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
		# On a fresh machine the package lists may be empty or stale: refresh once.
		qs_log "apt-get install failed; running apt-get update once and retrying"
		apt-get update
		apt-get install -y --no-install-recommends "${missing[@]}"
	fi
}

# qs_abs DIR: DIR if absolute, else relative to the repository.
qs_abs() { if [[ $1 == /* ]]; then printf '%s\n' "$1"; else printf '%s\n' "$QS_ROOT/$1"; fi; }

# qs_build DIR [extra meson args...]: configure DIR (setup or reconfigure) and build it.
qs_build() {
	local dir
	dir=$(qs_abs "$1")
	shift
	if [[ -f $dir/meson-private/coredata.dat ]]; then
		meson setup --reconfigure "$dir" "$QS_ROOT" "$@"
	else
		meson setup "$dir" "$QS_ROOT" "$@"
	fi
	ninja -C "$dir"
}

# qs_bus_start DIR: a private bus whose config looks like the system bus (type
# system, EXTERNAL auth, unix socket) but lets anyone own any name and call
# anything, so the service can run without installing our bus policy.
qs_bus_start() {
	local dir=$1 i
	mkdir -p "$dir"
	cat >"$dir/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$dir/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
EOF
	# setsid: Ctrl-C in the terminal reaches only the script, which then
	# stops the service and the bus in order.
	setsid dbus-daemon --nofork --nopidfile --config-file="$dir/bus.conf" \
		--print-address=3 3>"$dir/bus.address" </dev/null >"$dir/bus.log" 2>&1 &
	QS_BUS_PID=$!
	for ((i = 0; i < 200; i++)); do
		if [[ -s $dir/bus.address ]]; then
			# shellcheck disable=SC2034 # used by the scripts that source this
			QS_BUS_ADDRESS=$(head -n1 "$dir/bus.address")
			return 0
		fi
		kill -0 "$QS_BUS_PID" 2>/dev/null || break
		sleep 0.05
	done
	qs_log "private dbus-daemon did not start:"
	cat "$dir/bus.log" >&2 || true
	return 1
}

qs_bus_stop() {
	if [[ -n ${QS_BUS_PID:-} ]]; then
		kill "$QS_BUS_PID" 2>/dev/null || true
		wait "$QS_BUS_PID" 2>/dev/null || true
		QS_BUS_PID=
	fi
}
