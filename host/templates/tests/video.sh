# in.y4m: 10 frames of 64x48, the top half white, the bottom half black.
python3 - "$work/in.y4m" <<'PY'
import sys
w, h = 64, 48
frame = bytes([235]) * (w * h // 2) + bytes([16]) * (w * h // 2) + bytes([128]) * (w * h // 2)
with open(sys.argv[1], "wb") as f:
    f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
    for _ in range(10):
        f.write(b"FRAME\n" + frame)
PY
"$wasmrtc" run "$handler" --input "$work/in.y4m" --output "$work/out.y4m" > "$work/events.jsonl"
# Flipped: the first frame's top row is dark, its bottom row bright.
python3 - "$work/out.y4m" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
header, _, rest = data.partition(b"\n")
tags = {t[:1]: t[1:] for t in header.split()[1:]}
w, h = int(tags[b"W"]), int(tags[b"H"])
assert rest.startswith(b"FRAME"), "no frame in the output"
y = rest[rest.index(b"\n") + 1:][: w * h]
top, bottom = sum(y[:w]) / w, sum(y[-w:]) / w
assert top < 64 and bottom > 192, f"expected a dark top row and a bright bottom one, got {top:.0f} and {bottom:.0f}"
print(f"flipped: top row luma {top:.0f}, bottom row {bottom:.0f}")
PY
