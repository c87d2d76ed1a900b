# output_values EVENTS NAME: the values of output NAME in `wasmrtc run`'s JSON lines, one a line.
output_values() {
  python3 - "$@" <<'PY'
import json, sys
path, name = sys.argv[1], sys.argv[2]
for line in open(path):
    line = line.strip()
    if not line.startswith("{"):
        continue
    value = json.loads(line).get("outputs", {}).get(name)
    while isinstance(value, dict) and len(value) == 1:  # {"Number": 1.0}-style values
        value = next(iter(value.values()))
    if isinstance(value, (int, float)):
        print(value)
PY
}
# within VALUES LOW HIGH: there are values and their median lies in LOW..=HIGH.
within() {
  python3 - "$@" <<'PY'
import statistics, sys
values = [float(v) for v in sys.argv[1].split()]
low, high = float(sys.argv[2]), float(sys.argv[3])
assert values, "the handler emitted no values"
median = statistics.median(values)
assert low <= median <= high, f"expected values around {low}..{high}, got a median of {median} ({values})"
print(f"{len(values)} values, median {median}")
PY
}
