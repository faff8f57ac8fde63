#!/usr/bin/env bash
# Extra Docker Swarm nodes on this machine, for the multi-node tests and as the `exec` node provider
# of `plimsoll run` in them. Each node is a `dockerd` in namespaces of its own:
#   - network: namespace plmn-N-XXXX (N: a free slot, XXXX: random), a veth pair 10.213.N.1 (host
#     side, interface vplmn-N-XXXX) <-> 10.213.N.2 (eth0 inside);
#   - UTS: its own hostname plmn-N-XXXX, so that Swarm node names are unambiguous;
#   - PID + mount: the daemon is PID 1 of its namespace, so killing it (or `kill` below) stops the
#     node at once with every container on it, like a machine losing power, and leaves no mount behind.
# The host engine's swarm may advertise 127.0.0.1 (tests/support `ensure_swarm`); inside a namespace that
# address is the node itself, so 127.0.0.1:2377 and :7946 are DNAT'ed to the host side of the veth.
# A non-loopback manager address gets a host route through the veth. Nothing else is routed: a node
# reaches the host and nothing beyond it (no default route), and DOCKER_SERVICE_PREFER_OFFLINE_IMAGE
# keeps it from trying a registry before using the images loaded into it.
#
# Usage: swarm-node.sh [--state DIR] [--owner PID] [--tag TAG] [--image IMAGE]... COMMAND ...
#   create --count N --join-token T --manager HOST:PORT
#       starts N nodes, loads the images into them, joins them with T (a worker or a manager token) and
#       prints {"nodes":[{"hostname":..,"id":..,"address":..}]} (the nodes that joined; exit 1 if none).
#   delete --node ID --hostname H    stops node H and removes its namespaces, veth and files; prints
#                                    {"deleted":[{"hostname":..,"id":..}]}. Deleting a node that is gone
#                                    succeeds. It does not touch the swarm: `docker node rm` is the caller's.
#   kill --hostname H                SIGKILL to the node's daemon and everything in it (a crash); its
#                                    files stay until delete or cleanup.
#   list                             the nodes this state directory holds, as JSON lines.
#   cleanup [--tag TAG]              deletes the nodes whose owner process is gone (a killed test run), or
#                                    with --tag every node of that tag, and removes them from the swarm.
# --owner: the process whose end makes a node a leftover (default: the caller); --tag: a free label
# (a test's name) for cleanup. Needs root, ip, nsenter, unshare, iptables and dockerd.
set -euo pipefail

STATE=${PLIMSOLL_NODES_STATE:-/tmp/plimsoll-nodes}
OWNER=$PPID
TAG=""
IMAGES=()
NET=10.213
SLOTS=250

die() { echo "swarm-node: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --state) STATE=$2; shift 2 ;;
    --owner) OWNER=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    --image) IMAGES+=("$2"); shift 2 ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || die "missing command (create, delete, kill, list, cleanup)"
CMD=$1; shift
mkdir -p "$STATE"

# Start time of a process (field 22 of /proc/PID/stat), so that a reused pid is not taken for the owner.
start_time() { awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null || true; }

owner_alive() {
  local d=$1 pid start
  pid=$(cat "$d/owner" 2>/dev/null || true)
  start=$(cat "$d/owner_start" 2>/dev/null || true)
  [[ -n $pid && -d /proc/$pid && "$(start_time "$pid")" == "$start" ]]
}

json_node() { printf '{"hostname":"%s","id":"%s","address":"%s"}' "$1" "$2" "$3"; }

# Stops the node in slot dir $1 (SIGKILL to the namespace's init) and removes everything it had.
remove_slot() {
  local d=$1 n pid host
  n=$(basename "$d")
  host=$(cat "$d/hostname" 2>/dev/null || true)
  pid=$(cat "$d/unshare.pid" 2>/dev/null || true)
  if [[ -n $pid ]] && [[ "$(start_time "$pid")" == "$(cat "$d/unshare_start" 2>/dev/null)" ]]; then
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
  fi
  # The namespace's processes die with its init; wait for them so that no mount stays busy.
  for _ in $(seq 50); do
    pgrep -f "$d/x" >/dev/null 2>&1 || break
    sleep 0.1
  done
  if [[ -n $host ]]; then
    ip link del "v$host" 2>/dev/null || true
    ip netns del "$host" 2>/dev/null || true
  fi
  # Empty cgroups of its containers (--cgroup-parent) stay behind otherwise.
  [[ -n $host ]] && find /sys/fs/cgroup -maxdepth 2 -type d -name "$host" 2>/dev/null | while read -r cg; do
    find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  rm -rf "$d"
}

find_slot() { # by hostname
  local h=$1 d
  for d in "$STATE"/[0-9]*; do
    [[ -d $d ]] || continue
    [[ "$(cat "$d/hostname" 2>/dev/null)" == "$h" ]] && { echo "$d"; return 0; }
  done
  return 1
}

# Appends "PHASE MICROSECONDS-SINCE-EPOCH" to the slot's `timing` file: where a create's time goes
# (read by the node scale-up measurement in tests/swarm_nodes.rs).
mark() { echo "$1 ${EPOCHREALTIME/./}" >>"$d/timing"; }

create_one() {
  local token=$1 manager=$2 n d host ns sock mhost mport i id
  # A slot is claimed by creating its directory, which is atomic; numbers are reused after delete.
  for ((n = 1; n <= SLOTS; n++)); do
    mkdir "$STATE/$n" 2>/dev/null && break
  done
  ((n <= SLOTS)) || die "no free slot in $STATE"
  d=$STATE/$n
  mark start
  echo "$OWNER" >"$d/owner"
  start_time "$OWNER" >"$d/owner_start"
  echo "$TAG" >"$d/tag"
  host=plmn-$n-$(head -c2 /dev/urandom | od -An -tx1 | tr -d ' \n')
  echo "$host" >"$d/hostname"
  ns=/var/run/netns/$host
  sock=$d/x/docker.sock
  mkdir -p "$d/x" "$d/data"
  echo '{}' >"$d/daemon.json" # not the host's /etc/docker/daemon.json (its data-root)
  trap 'remove_slot "$d"' ERR
  # Whatever a crashed run left in this slot is stale (the slot was free): its address would clash.
  for l in $(ip -o link show | awk -F': ' '{ print $2 }' | grep "^vplmn-$n-" | cut -d@ -f1 || true); do
    ip link del "$l" 2>/dev/null || true
  done
  for l in $(ip netns list | awk '{ print $1 }' | grep "^plmn-$n-" || true); do ip netns del "$l" || true; done

  ip netns add "$host"
  ip link add "v$host" type veth peer name eth0 netns "$host"
  ip addr add "$NET.$n.1/24" dev "v$host"
  ip link set "v$host" up
  mhost=${manager%:*}
  mport=${manager##*:}
  nsenter --net="$ns" sh -ec "
    ip link set lo up
    ip addr add $NET.$n.2/24 dev eth0
    ip link set eth0 up"
  case $mhost in
    127.*)
      nsenter --net="$ns" sh -ec "
        sysctl -qw net.ipv4.conf.all.route_localnet=1
        iptables -t nat -A OUTPUT -d $mhost/32 -p tcp --dport $mport -j DNAT --to-destination $NET.$n.1:$mport
        iptables -t nat -A OUTPUT -d $mhost/32 -p tcp --dport 7946 -j DNAT --to-destination $NET.$n.1:7946
        iptables -t nat -A OUTPUT -d $mhost/32 -p udp --dport 7946 -j DNAT --to-destination $NET.$n.1:7946
        iptables -t nat -A POSTROUTING -s 127.0.0.0/8 -d $NET.$n.1/32 -j SNAT --to-source $NET.$n.2"
      ;;
    $NET.$n.1) ;;
    *) nsenter --net="$ns" ip route add "$mhost/32" via "$NET.$n.1" ;;
  esac

  mark namespaces
  DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 setsid nsenter --net="$ns" \
    unshare --uts --pid --fork --kill-child --mount --mount-proc \
    sh -c "hostname $host; exec dockerd --config-file $d/daemon.json --data-root $d/data --exec-root $d/x \
      --pidfile $d/x/dockerd.pid -H unix://$sock --bridge none --iptables=false --ip-masq=false \
      --cgroup-parent $host" \
    >"$d/dockerd.log" 2>&1 </dev/null &
  echo $! >"$d/unshare.pid"
  start_time $! >"$d/unshare_start"
  for i in $(seq 300); do
    docker -H "unix://$sock" version >/dev/null 2>&1 && break
    [[ -d /proc/$(cat "$d/unshare.pid") ]] || { tail -5 "$d/dockerd.log" >&2; false; }
    sleep 0.1
  done
  docker -H "unix://$sock" version >/dev/null
  mark dockerd
  # Inside the node, /var/run/docker.sock is its own engine's (as on a machine of its own), so that a
  # container mounting it there (the collector of deploy/plimsoll-stack.yml) talks to this node's
  # daemon. The mount stays in the node's mount namespace.
  nsenter --target "$(cat "$d/unshare.pid")" --mount mount --bind "$sock" /var/run/docker.sock
  if ((${#IMAGES[@]})); then
    docker save "${IMAGES[@]}" | docker -H "unix://$sock" load >/dev/null
  fi
  mark images
  docker -H "unix://$sock" swarm join --token "$token" --advertise-addr "$NET.$n.2" \
    --listen-addr "$NET.$n.2:2377" "$manager" >/dev/null
  mark swarm_join
  id=$(docker -H "unix://$sock" info --format '{{.Swarm.NodeID}}')
  echo "$id" >"$d/node_id"
  trap - ERR
  json_node "$host" "$id" "$NET.$n.2"
}

case $CMD in
  create)
    count=1 token="" manager=""
    while [[ $# -gt 0 ]]; do
      case $1 in
        --count) count=$2; shift 2 ;;
        --join-token) token=$2; shift 2 ;;
        --manager) manager=$2; shift 2 ;;
        *) die "create: unknown argument $1" ;;
      esac
    done
    [[ -n $token && -n $manager ]] || die "create needs --join-token and --manager"
    [[ $manager == *:* ]] || manager=$manager:2377
    out=() failed=0
    opts=(--state "$STATE" --owner "$OWNER" --tag "$TAG")
    for img in "${IMAGES[@]}"; do opts+=(--image "$img"); done
    for ((k = 0; k < count; k++)); do
      # Each node in a process of its own: `set -e` does not apply inside an `if` in this one.
      if node=$(bash "$0" "${opts[@]}" create-one "$token" "$manager"); then
        out+=("$node")
      else
        failed=$((failed + 1))
      fi
    done
    ((${#out[@]})) || die "no node could be created"
    ((failed == 0)) || echo "swarm-node: $failed of $count nodes failed" >&2
    (IFS=,; echo "{\"nodes\":[${out[*]}]}")
    ;;
  create-one) create_one "$1" "$2" ;;
  delete)
    node="" host=""
    while [[ $# -gt 0 ]]; do
      case $1 in
        --node) node=$2; shift 2 ;;
        --hostname) host=$2; shift 2 ;;
        *) die "delete: unknown argument $1" ;;
      esac
    done
    [[ -n $host ]] || die "delete needs --hostname"
    if d=$(find_slot "$host"); then
      [[ -z $node || "$(cat "$d/node_id" 2>/dev/null)" == "$node" || ! -s $d/node_id ]] ||
        die "node $host is $(cat "$d/node_id"), not $node"
      remove_slot "$d"
    fi
    echo "{\"deleted\":[{\"hostname\":\"$host\",\"id\":\"$node\"}]}"
    ;;
  kill)
    [[ ${1:-} == --hostname && -n ${2:-} ]] || die "kill needs --hostname"
    d=$(find_slot "$2") || die "no node $2"
    kill -KILL "$(cat "$d/unshare.pid")"
    ;;
  list)
    for d in "$STATE"/[0-9]*; do
      [[ -f $d/hostname ]] || continue
      printf '{"slot":%s,"hostname":"%s","id":"%s","tag":"%s","owner":"%s"}\n' "$(basename "$d")" \
        "$(cat "$d/hostname")" "$(cat "$d/node_id" 2>/dev/null)" "$(cat "$d/tag")" "$(cat "$d/owner")"
    done
    ;;
  cleanup)
    want=""
    [[ ${1:-} == --tag ]] && want=${2:?cleanup --tag needs a value}
    for d in "$STATE"/[0-9]*; do
      [[ -d $d ]] || continue
      if [[ -n $want ]]; then
        [[ "$(cat "$d/tag" 2>/dev/null)" == "$want" ]] || continue
      else
        owner_alive "$d" && continue
        # A slot being created has no owner file for a moment; leave it unless it is old.
        [[ -f $d/owner ]] || [[ -n $(find "$d" -maxdepth 0 -mmin +1) ]] || continue
      fi
      id=$(cat "$d/node_id" 2>/dev/null || true)
      remove_slot "$d"
      [[ -z $id ]] || docker node rm --force "$id" >/dev/null 2>&1 || true
    done
    if [[ -z $want ]]; then
      # Swarm entries of nodes whose files are gone (a run killed between the two removals).
      known=$(cat "$STATE"/[0-9]*/node_id 2>/dev/null || true)
      docker node ls --format '{{.ID}} {{.Hostname}} {{.Status}}' 2>/dev/null |
        while read -r id h status; do
          [[ $h == plmn-* && $status == Down ]] || continue
          grep -qx "$id" <<<"$known" || docker node rm --force "$id" >/dev/null 2>&1 || true
        done
    fi
    ;;
  *) die "unknown command $CMD" ;;
esac
