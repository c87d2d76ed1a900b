# peak OUT.wav LOW HIGH: the largest absolute sample of OUT.wav lies in LOW..=HIGH.
peak() {
  python3 - "$@" <<'PY'
import array, sys, wave
path, low, high = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with wave.open(path) as w:
    samples = array.array("h", w.readframes(w.getnframes()))
peak = max(map(abs, samples), default=0)
assert low <= peak <= high, f"{path}: expected a peak within {low}..{high}, got {peak}"
print(f"{path}: peak {peak} ({len(samples)} samples)")
PY
}
