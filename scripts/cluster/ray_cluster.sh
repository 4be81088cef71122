#!/usr/bin/env bash
# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
# Start a Ray cluster by hand, one call per node, then launch experiments on the head (or with ray_submit.sh).
#   head:    bash scripts/cluster/ray_cluster.sh head
#   workers: HEAD_IP=<head ip> bash scripts/cluster/ray_cluster.sh worker
#   check:   bash scripts/cluster/ray_cluster.sh status
#   run:     RAY_ADDRESS=<head ip>:6379 NNODES=2 bash scripts/train/run_quatro_qwen2.5_math_7b.sh   (on the head)
#   stop:    bash scripts/cluster/ray_cluster.sh stop   (on every node)
# verl's run_ppo attaches to a running cluster when RAY_ADDRESS is set; leave ray_kwargs.ray_init.num_cpus unset then.
# Every node needs this package installed (pip install -e .) so verl's plugin entry point registers it.
set -euo pipefail

role=${1:?usage: ray_cluster.sh head|worker|status|stop}

# Environment knobs
RAY_PORT=${RAY_PORT:-6379}
DASHBOARD_PORT=${DASHBOARD_PORT:-8265}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
NUM_CPUS=${NUM_CPUS:-$(nproc)}
NODE_IP=${NODE_IP:-$(hostname -I | awk '{print $1}')}
DRY_RUN=${DRY_RUN:-0}

case "${role}" in
  head)
    cmd=(ray start --head --node-ip-address="${NODE_IP}" --port="${RAY_PORT}" --dashboard-host=0.0.0.0
         --dashboard-port="${DASHBOARD_PORT}" --num-cpus="${NUM_CPUS}" --num-gpus="${GPUS_PER_NODE}")
    ;;
  worker)
    HEAD_IP=${HEAD_IP:?set HEAD_IP to the head node address}
    cmd=(ray start --address="${HEAD_IP}:${RAY_PORT}" --node-ip-address="${NODE_IP}"
         --num-cpus="${NUM_CPUS}" --num-gpus="${GPUS_PER_NODE}")
    ;;
  status) cmd=(ray status) ;;
  stop) cmd=(ray stop) ;;
  *) echo "role must be head, worker, status or stop, got '${role}'" >&2; exit 2 ;;
esac

if [[ "${DRY_RUN}" == 1 ]]; then
  echo "[ray_cluster] would run: ${cmd[*]}"
else
  echo "[ray_cluster] ${cmd[*]}"
  "${cmd[@]}"
fi
if [[ "${role}" == head ]]; then
  echo "[ray_cluster] workers: HEAD_IP=${NODE_IP} bash scripts/cluster/ray_cluster.sh worker"
  echo "[ray_cluster] jobs:    RAY_ADDRESS=http://${NODE_IP}:${DASHBOARD_PORT} bash scripts/cluster/ray_submit.sh <script>"
fi
