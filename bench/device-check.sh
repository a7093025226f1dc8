#!/bin/bash
# GPU execution providers on a machine with an NVIDIA GPU but no network (how docs/performance.md's
# GPU figures were taken). Two steps, both from the repository root:
#
#   bench/device-check.sh prepare   here, with network: bundles bench/child.ts, packs Node.js,
#                                   onnxruntime-node and the Vulkan loader into bench/out/device
#   bench/device-check.sh run       on the GPU machine (with bench/out/device copied along):
#                                   CPU, WebGPU and CUDA collection on a ResNet-scale generated model
#
# SAMPLES (default 64) and DEVICES (default "cpu webgpu cuda") adjust the run; results go to $OUT
# (default bench/out/device/results).
set -u
here=$(pwd)/bench/out/device
case "${1:-}" in
prepare)
  set -e
  mkdir -p "$here" /tmp/devpack/node_modules
  node_modules/.bin/esbuild bench/child.ts --bundle --platform=node --format=esm --target=node20 --external:onnxruntime-node \
    --outfile="$here/child.mjs" --banner:js="import { createRequire as __benchRequire } from 'module'; const require = __benchRequire(import.meta.url);"
  cp -r node_modules/onnxruntime-node node_modules/onnxruntime-common /tmp/devpack/node_modules/
  rm -rf /tmp/devpack/node_modules/onnxruntime-node/bin/napi-v6/{darwin,win32,linux/arm64}
  cp "$(command -v node)" /tmp/devpack/node
  tar -cJf "$here/devpack.tar.xz" -C /tmp/devpack .
  # Dawn (WebGPU) dlopens the Vulkan loader; NVIDIA's Vulkan driver needs glvnd and X11 client libraries.
  (cd "$here" && apt-get download libvulkan1 libglvnd0 libglx0 libgl1 libegl1 libopengl0 libgles2 libx11-6 libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0)
  du -sh "$here"
  ;;
run)
  out=${OUT:-$here/results}
  mkdir -p /tmp/dev /tmp/vk "$out"
  tar -xJf "$here/devpack.tar.xz" -C /tmp/dev
  for deb in "$here"/*.deb; do dpkg -x "$deb" /tmp/vk; done
  cp "$here/child.mjs" /tmp/dev/
  export LD_LIBRARY_PATH=/tmp/vk/usr/lib/x86_64-linux-gnu:/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$f" ] && export VK_DRIVER_FILES=$f && break
  done
  {
    nvidia-smi -L; nproc; echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-none}"
    /tmp/dev/node -e "console.log(JSON.stringify(require('/tmp/dev/node_modules/onnxruntime-node').listSupportedBackends()))"
  } > "$out/env.txt" 2>&1
  spec='{"inputChannels":3,"size":224,"channels":[64,64,128,128,256,256,512,512],"strides":[2,1,2,1,2,1,2,1],"classes":1000,"seed":11}'
  cd /tmp/dev
  for device in ${DEVICES:-cpu webgpu cuda}; do
    timeout 300 ./node child.mjs collect "{\"model\":{\"kind\":\"cnn\",\"spec\":$spec},\"samples\":${SAMPLES:-64},\"passes\":2,\"device\":\"$device\"}" > "$out/$device.txt" 2>&1
    echo "$device exit $?" >> "$out/env.txt"
  done
  cat "$out/env.txt"
  for device in ${DEVICES:-cpu webgpu cuda}; do echo "== $device"; grep -E "Error|bench-result" "$out/$device.txt" | head -3 | cut -c1-1500; done
  ;;
*)
  echo "usage: bench/device-check.sh prepare|run" >&2
  exit 2
  ;;
esac
