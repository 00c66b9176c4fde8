#!/usr/bin/env bash
# Makes the native TensorFlow backend (@tensorflow/tfjs-node) work on machines that reach only the package
# registries. tfjs-node's own install script downloads libtensorflow from a host such machines cannot reach, so:
#   1. install @tensorflow/tfjs-node from npm with its install script skipped (and without touching package.json);
#   2. take libtensorflow (the TF C API) from PyPI's tensorflow-cpu wheel: libtensorflow_cc.so.2 exports the
#      TF_*/TFE_* symbols the binding calls, libtensorflow_framework.so.2 is its runtime; the wheel also ships the
#      C headers;
#   3. build tfjs-node's N-API binding from its shipped C++ sources with node-gyp against Node's local headers,
#      and put it where tfjs-node's loader (node-pre-gyp `find`) looks for it;
#   4. check that `require('@tensorflow/tfjs-node')` computes a convolution correctly.
# With --gpu the same recipe builds @tensorflow/tfjs-node-gpu instead, from PyPI's `tensorflow` wheel (CUDA kernels
# inside) plus the CUDA 12 libraries of the nvidia-*-cu12 wheels, unpacked into deps/nvidia/<library>/lib beside
# deps/lib where TensorFlow's RUNPATH finds them (scripts/native-wheels.sh nvidia-layout). It needs no CUDA toolkit,
# only the NVIDIA driver at run time; on a machine without one it loads and computes on the CPU (mmsweep doctor
# says why no GPU is used). Both builds can coexist; neither deletes the other.
# Idempotent: a finished setup is detected (stamp + load check) and left alone. Every wheel is pinned by version and
# sha256 (scripts/native-pins/{cpu,gpu}.txt) and cached (MMSWEEP_NATIVE_CACHE, default ~/.cache/mmsweep/native), so
# reruns after `npm ci` download nothing.
# Usage: scripts/setup-native.sh [--gpu] [--force] [--check]   (--check: only report whether the build loads)
set -euo pipefail

TF_VERSION="2.20.0"

log() { echo "[setup-native] $*"; }
die() { echo "[setup-native] error: $*" >&2; exit 1; }

force=0
check_only=0
gpu=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --check) check_only=1 ;;
    --gpu) gpu=1 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) die "unknown option '$arg' (use --gpu for the CUDA build, --force to rebuild, --check to only test loading)" ;;
  esac
done

cd "$(dirname "$0")/.."
project_dir="$(pwd)"
wheels="$project_dir/scripts/native-wheels.sh"
if [ "$gpu" = 1 ]; then
  package="@tensorflow/tfjs-node-gpu"
  pins="$project_dir/scripts/native-pins/gpu.txt"
  tf_wheel_name="tensorflow"
  cache_name="tensorflow-gpu-$TF_VERSION"
  download_size="~2.1 GB: TensorFlow with CUDA kernels + CUDA 12 libraries"
else
  package="@tensorflow/tfjs-node"
  pins="$project_dir/scripts/native-pins/cpu.txt"
  tf_wheel_name="tensorflow-cpu"
  cache_name="tensorflow-cpu-$TF_VERSION"
  download_size="~260 MB"
fi
setup_command="npm run setup:native$([ "$gpu" = 1 ] && echo ' -- --gpu' || true)"
pkg_dir="$project_dir/node_modules/$package"
stamp="$pkg_dir/deps/.mmsweep-native.json"

# Loads the package the way src/backend does and runs a conv whose answer is known (the same smoke test). The GPU
# build also says whether TensorFlow put the op on a GPU (on a machine without one it computes on the CPU).
load_check() {
  node --input-type=module -e "
    const tf = await import('$package');
    await tf.setBackend('tensorflow');
    const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]);
    const w = tf.tensor4d([1, 0, 0, -1], [2, 2, 1, 1]);
    const got = Array.from(tf.conv2d(x, w, 1, 'valid').dataSync());
    if (got.join() !== '-4,-4,-4,-4') { console.error('conv2d computed ' + got); process.exit(1); }
    const gpu = '$package'.endsWith('-gpu') ? (tf.backend().isUsingGpuDevice ? ', on a GPU' : ', on the CPU (no GPU used: see mmsweep doctor)') : '';
    console.log('backend ' + tf.getBackend() + ', libtensorflow ' + tf.backend().binding.TF_Version +
      ', $package ' + tf.version['tfjs-node'] + gpu);
  " 2>/dev/null
}

# The project's own dependencies first: installing tfjs-node with --ignore-scripts into an empty node_modules
# would install the whole tree without the install scripts other packages need.
[ -f "$project_dir/node_modules/@tensorflow/tfjs/package.json" ] ||
  die "the project's dependencies are not installed: run \`npm ci\` first"

# One setup at a time per checkout (two concurrent runs would unpack into the same deps/ folder).
exec 9>"$project_dir/node_modules/.mmsweep-setup-native.lock"
flock 9

node_abi="$(node -p 'process.versions.modules + "-napi" + process.versions.napi')"
if [ "$gpu" = 1 ]; then
  # The pins' digest is part of the stamp: changing a pinned wheel rebuilds. The CUDA runtime and cuDNN versions
  # are read back by src/backend/gpu.ts and recorded with every result trained on this build.
  cuda_version="$(sed -n 's/^nvidia-cuda-runtime-cu12==\([^ ]*\) .*/\1/p' "$pins")"
  cudnn_version="$(sed -n 's/^nvidia-cudnn-cu12==\([^ ]*\) .*/\1/p' "$pins")"
  wanted_stamp="{\"tensorflow\":\"$TF_VERSION\",\"node\":\"$node_abi\",\"pins\":\"$(sha256sum "$pins" | cut -c1-16)\",\"cuda\":\"$cuda_version\",\"cudnn\":\"$cudnn_version\"}"
else
  wanted_stamp="{\"tensorflow\":\"$TF_VERSION\",\"node\":\"$node_abi\"}"
fi

if [ "$check_only" = 1 ]; then
  if out="$(load_check)"; then log "$package loads: $out"; exit 0; fi
  log "$package does not load (run: $setup_command)"; exit 1
fi

if [ "$force" = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted_stamp" ] && out="$(load_check)"; then
  log "already set up: $out"
  exit 0
fi

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] ||
  die "only Linux x86_64 is supported here (this is $(uname -s)-$(uname -m)); on other systems install @tensorflow/tfjs-node normally where its download works"
for tool in python3 g++ make unzip; do
  command -v "$tool" >/dev/null || die "'$tool' is missing: install it (Debian: apt-get install -y python3 python3-pip g++ make unzip)"
done
python3 -m pip --version >/dev/null 2>&1 || die "pip is missing for python3 (Debian: apt-get install -y python3-pip)"

# Node's headers: node-gyp would download them from nodejs.org, so point it at a local copy instead.
nodedir="${NODE_GYP_NODEDIR:-$(node -p 'require("path").resolve(process.execPath, "..", "..")')}"
[ -f "$nodedir/include/node/common.gypi" ] && [ -f "$nodedir/include/node/node_api.h" ] ||
  die "Node's C headers are not under $nodedir/include/node (Debian's/NodeSource's nodejs package ships them there; official tarballs too). Set NODE_GYP_NODEDIR to a directory holding include/node for Node $(node --version)."

# node-gyp: the copy npm bundles (npm tells scripts where it is), else one on PATH.
node_gyp="${npm_config_node_gyp:-}"
if [ -z "$node_gyp" ] || [ ! -f "$node_gyp" ]; then
  npm_root="$(dirname "$(readlink -f "$(command -v npm)")")/.."
  node_gyp="$npm_root/node_modules/node-gyp/bin/node-gyp.js"
fi
if [ ! -f "$node_gyp" ]; then
  command -v node-gyp >/dev/null || die "node-gyp not found (it ships with npm; or: npm install -g node-gyp)"
  node_gyp="$(command -v node-gyp)"
fi

# 1. The npm package, install script skipped. Its version comes from package.json's optionalDependencies.
# (npm may add the other native package alongside, unbuilt: it is left in place, and src/backend reports an
# unbuilt package as such without importing it.)
tfjs_node_version="$(node -p "require('./package.json').optionalDependencies['$package']")"
[ "$tfjs_node_version" != "undefined" ] || die "package.json has no optionalDependencies entry for $package"
installed_version="$(node -p "try { require('./node_modules/$package/package.json').version } catch { '' }")"
if [ "$installed_version" != "$tfjs_node_version" ]; then
  log "installing $package@$tfjs_node_version from npm (install script skipped, package.json untouched)"
  flock /tmp/mmsweep-npm.lock npm install --no-save --ignore-scripts --no-audit --no-fund \
    "$package@$tfjs_node_version"
else
  log "$package@$tfjs_node_version is installed"
fi

# 2. libtensorflow (and with --gpu the CUDA libraries) from PyPI, every file checked against its pinned sha256.
cache_dir="${MMSWEEP_NATIVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmsweep/native}/$cache_name"
log "checking the pinned wheels in $cache_dir (a missing one is downloaded once: $download_size)"
bash "$wheels" fetch "$pins" "$cache_dir"
wheel="$(bash "$wheels" wheel "$pins" "$cache_dir" "$tf_wheel_name")"
log "using $(basename "$wheel")"

log "unpacking libtensorflow and its C headers into $pkg_dir/deps"
rm -rf "$pkg_dir/deps" "$pkg_dir/build"
unpack_dir="$(mktemp -d)"
trap 'rm -rf "$unpack_dir"' EXIT
# Only the headers tfjs-node's binding includes (transitively), not the wheel's 236 MB include tree.
unzip -q "$wheel" -d "$unpack_dir" \
  'tensorflow/libtensorflow_cc.so.2' 'tensorflow/libtensorflow_framework.so.2' \
  'tensorflow/include/tensorflow/c/*' 'tensorflow/include/tensorflow/core/platform/ctstring*' \
  'tensorflow/include/tsl/platform/ctstring*' 'tensorflow/include/xla/tsl/c/*'
mkdir -p "$pkg_dir/deps/lib"
mv "$unpack_dir/tensorflow/include" "$pkg_dir/deps/include"
mv "$unpack_dir/tensorflow/libtensorflow_cc.so.2" "$unpack_dir/tensorflow/libtensorflow_framework.so.2" "$pkg_dir/deps/lib/"
# binding.gyp links `-ltensorflow -ltensorflow_framework`; the binding then records the libraries' sonames
# (libtensorflow_cc.so.2, libtensorflow_framework.so.2) and finds them through its rpath $ORIGIN/../../deps/lib.
ln -s libtensorflow_cc.so.2 "$pkg_dir/deps/lib/libtensorflow.so"
ln -s libtensorflow_framework.so.2 "$pkg_dir/deps/lib/libtensorflow_framework.so"

# 3. The binding, placed where node-pre-gyp's `find` (used by tfjs-node's index.js) looks for it.
binding_path="$(node -p "require('@mapbox/node-pre-gyp').find(require.resolve('$package/package.json'))")"
napi_build_version="$(basename "$(dirname "$binding_path")")"
napi_build_version="${napi_build_version#napi-v}"
log "building the N-API binding (napi v$napi_build_version) with node-gyp against $nodedir/include/node"
(
  cd "$pkg_dir"
  node "$node_gyp" rebuild --nodedir="$nodedir" --module_name=tfjs_binding \
    --module_path="$(dirname "$binding_path")" --napi_build_version="$napi_build_version" >"$unpack_dir/node-gyp.log" 2>&1 ||
    { tail -n 40 "$unpack_dir/node-gyp.log" >&2; die "node-gyp failed to build tfjs-node's binding (log above)"; }
)
[ -f "$binding_path" ] || die "node-gyp finished but $binding_path is missing"
rm -rf "$pkg_dir/build"

# 3b. The CUDA libraries beside deps/lib (GPU build only).
if [ "$gpu" = 1 ]; then
  log "unpacking the CUDA 12 libraries into $pkg_dir/deps/nvidia"
  bash "$wheels" nvidia-layout "$pins" "$cache_dir" "$pkg_dir/deps"
fi

# 4. Prove it.
if ! out="$(load_check)"; then
  node --input-type=module -e "await import('$package')" || true
  die "the binding was built but $package does not load or compute correctly (error above)"
fi
echo "$wanted_stamp" >"$stamp"
log "done: $out ($(du -sh "$pkg_dir/deps" | cut -f1) in $pkg_dir/deps)"
