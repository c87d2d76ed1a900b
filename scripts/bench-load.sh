#!/usr/bin/env bash
# Load benchmarks: builds the host and the load generator in release mode, then runs the
# standard scenarios against servers pinned to CPU 0 with the load generator on CPU 1,
# printing the figures and writing JSON under target/bench-load/.
#   scripts/bench-load.sh                 # every scenario
#   scripts/bench-load.sh audio video     # some of: audio webrtc-rs video video-h264 join ws hot-swap isolation
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p wasmrtc --bin wasmrtc -p wasmrtc-tests --bin wasmrtc-loadgen
out=target/bench-load
mkdir -p "$out"
loadgen=./target/release/wasmrtc-loadgen
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(audio webrtc-rs video video-h264 join ws hot-swap isolation)
echo "machine: $(nproc) CPUs, $(uptime)"
for s in "${scenarios[@]}"; do
    echo
    echo "== $s"
    case "$s" in
        audio)     "$loadgen" --mode audio --streams 40,60,80,100,120 --keep-going --json "$out/audio.json" ;;
        webrtc-rs) "$loadgen" --mode audio --client webrtc-rs --streams 20,40,60,80 --json "$out/audio-webrtc-rs.json" ;;
        video)     "$loadgen" --mode video --streams 4,5,6,7,8 --keep-going --json "$out/video.json" ;;
        video-h264) "$loadgen" --mode video --codec h264 --streams 8,10,11,12,13,14 --keep-going --json "$out/video-h264.json" ;;
        join)      "$loadgen" --mode audio --scenario join --joins 100 --json "$out/join.json" ;;
        ws)        "$loadgen" --mode ws --streams 50,100,200,250,300 --keep-going --json "$out/ws.json" ;;
        hot-swap)  "$loadgen" --mode ws --scenario hot-swap --streams 50 --json "$out/hot-swap.json" ;;
        isolation) "$loadgen" --mode audio --scenario isolation --streams 40 --joins 12 --json "$out/isolation.json" ;;
        *) echo "unknown scenario $s (audio webrtc-rs video video-h264 join ws hot-swap isolation)" >&2; exit 2 ;;
    esac
done
