#!/bin/bash
# bench/reflink-shell.sh DIR N — the reference side of bench/reflink: the file
# operations of one Start+Stop of a VM's three file-reflink volumes, done by
# hand with cp --reflink=always, mv, truncate and rm, the three volumes in
# parallel like Manager.StartVolumes/StopVolumes do. DIR is a pool directory
# laid out like the service's (vm-templates/tpl/root.img,
# appvms/app/private.img); N is the number of the revision this Stop makes.
# Every new file is made beside its target (<name>~sh) and renamed onto it.
set -eu

D=$1
n=$2
T=$D/vm-templates/tpl
A=$D/appvms/app
ts=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# ---- start ----
# root (snapshot): template clean → own clean → dirty
{
	cp --reflink=always "$T/root.img" "$A/root.img~sh"
	mv "$A/root.img~sh" "$A/root.img"
	cp --reflink=always "$A/root.img" "$A/root-dirty.img~sh"
	mv "$A/root-dirty.img~sh" "$A/root-dirty.img"
} &
p1=$!
# private (origin): clean → dirty
{
	cp --reflink=always "$A/private.img" "$A/private-dirty.img~sh"
	mv "$A/private-dirty.img~sh" "$A/private-dirty.img"
} &
p2=$!
# volatile: a fresh sparse image
{
	truncate -s 10G "$A/volatile-dirty.img~sh"
	mv "$A/volatile-dirty.img~sh" "$A/volatile-dirty.img"
} &
p3=$!
wait "$p1"
wait "$p2"
wait "$p3"

# ---- stop ----
{ rm -f "$A/root-dirty.img" "$A/root.img"; } &
p1=$!
# private: clean → revision N, keep 1 revision, dirty → clean
{
	rev="$A/private.img.$n@$ts"
	cp --reflink=always "$A/private.img" "$rev~sh"
	mv "$rev~sh" "$rev"
	for f in "$A"/private.img.*@*Z; do
		[[ $f == "$rev" ]] || rm -f "$f"
	done
	mv "$A/private-dirty.img" "$A/private.img"
} &
p2=$!
{ rm -f "$A/volatile-dirty.img"; } &
p3=$!
wait "$p1"
wait "$p2"
wait "$p3"
