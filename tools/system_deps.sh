#!/usr/bin/env bash
# System packages the tests use: a C compiler (C export), Icarus Verilog and Verilator (Verilog
# export), yosys (logic synthesis) and
# Fashion-MNIST (Debian package dataset-fashion-mnist, read by neurohw.data.load_fashion_mnist).
# Installs them with apt when missing and when we may (root); otherwise says what is missing.
set -u
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v iverilog >/dev/null 2>&1 || need+=(iverilog)
command -v yosys >/dev/null 2>&1 || need+=(yosys)
command -v verilator >/dev/null 2>&1 || need+=(verilator)
dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || need+=(dataset-fashion-mnist)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system_deps: installing ${need[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null 2>&1 \
    || echo "system_deps: could not install ${need[*]}; tests that need them will skip with a reason"
else
  echo "system_deps: missing ${need[*]} (install them to run the C/Verilog export tests)"
fi
exit 0
