#!/bin/bash
# Build kube-apiserver v1.20.2 from Debian bookworm's `kubernetes` SOURCE package (its tree ships
# vendor/) with Debian's golang-go, and install etcd from Debian. Idempotent and cached:
# a second run with $OUT/kube-apiserver present only checks the etcd packages.
# Used by seb-testinfra's `kube` module (embedded with include_str!) and runnable by hand.
# Serialised with flock so parallel test binaries build once. Progress goes to stderr.
set -euo pipefail
OUT=${SEB_KUBE_BIN_DIR:-/opt/kube-1.20.2}
WORK=${SEB_KUBE_SRC_DIR:-/var/tmp/seb-kube-src}
export DEBIAN_FRONTEND=noninteractive
log() { echo "[seb-testinfra kube-build $(date +%T)] $*" >&2; }
mkdir -p "$OUT" "$WORK"
exec 9>"$OUT/.build.lock"
flock 9
updated=
apt_update() { [ -n "$updated" ] || { log "apt-get update"; apt-get update -qq >/dev/null; updated=1; }; }
need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server etcd-client)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ! -x "$OUT/kube-apiserver" ]; then
  command -v go >/dev/null 2>&1 || need+=(golang-go)
  command -v rsync >/dev/null 2>&1 || need+=(rsync)
  command -v dpkg-source >/dev/null 2>&1 || need+=(dpkg-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
  apt_update
  log "apt-get install ${need[*]}"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -x "$OUT/kube-apiserver" ]; then
  log "cached: $OUT/kube-apiserver"
  exit 0
fi
T0=$(date +%s)
if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then
  # A deb-src twin of the machine's first non-security deb stanza, in its own file; the
  # machine's own sources file stays untouched.
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    awk 'BEGIN{RS="";ORS="\n\n"} /^Types: deb/ && !/security/ {sub(/^Types: deb/,"Types: deb-src"); print; exit}' \
      /etc/apt/sources.list.d/debian.sources > /etc/apt/sources.list.d/seb-debian-src.sources
  else
    grep -E '^deb ' /etc/apt/sources.list | grep -v security | head -1 | sed 's/^deb /deb-src /' \
      > /etc/apt/sources.list.d/seb-debian-src.list
  fi
  updated=; apt_update
fi
cd "$WORK"
if ! ls kubernetes_*.dsc >/dev/null 2>&1; then
  log "apt-get source --download-only kubernetes"
  apt-get source -qq --download-only kubernetes >/dev/null
fi
SRCDIR=$(ls -d "$WORK"/kubernetes-*/ 2>/dev/null | head -1 || true)
if [ -z "$SRCDIR" ]; then
  log "dpkg-source -x"
  dpkg-source -x kubernetes_*.dsc >/dev/null
  SRCDIR=$(ls -d "$WORK"/kubernetes-*/ | head -1)
fi
cd "$SRCDIR"
export GOPATH=$PWD/.go GOCACHE=$WORK/gocache GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 HOME=$WORK/home
unset GOFLAGS  # GOPATH mode (hack/ sets GO111MODULE=off)
mkdir -p .go/src/k8s.io "$HOME"
[ -L .go/src/k8s.io/kubernetes ] || ln -s ../../.. .go/src/k8s.io/kubernetes
log "make WHAT=cmd/kube-apiserver (about 5 minutes on 2 cores; log in $WORK/make.log)"
make WHAT=cmd/kube-apiserver >"$WORK/make.log" 2>&1 || { tail -40 "$WORK/make.log" >&2; exit 1; }
cp _output/bin/kube-apiserver "$OUT/kube-apiserver.tmp"
mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
"$OUT/kube-apiserver" --version >&2
log "built in $(( $(date +%s) - T0 )) s"
