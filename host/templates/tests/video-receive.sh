# 10 frames of the 320x240 ramp, each one different from the last.
"$wasmrtc" run "$handler" --frames 10 --output "$work/out.y4m" > "$work/events.jsonl"
python3 - "$work/out.y4m" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
header, _, rest = data.partition(b"\n")
tags = {t[:1]: t[1:] for t in header.split()[1:]}
w, h = int(tags[b"W"]), int(tags[b"H"])
size = w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)
frames = []
while rest.startswith(b"FRAME"):
    start = rest.index(b"\n") + 1
    frames.append(rest[start:start + size])
    rest = rest[start + size:]
assert (w, h) == (320, 240), f"expected 320x240, got {w}x{h}"
assert len(frames) == 10, f"expected 10 frames, got {len(frames)}"
assert len(set(frames)) > 1, "every frame is the same"
print(f"{len(frames)} frames of {w}x{h}")
PY
