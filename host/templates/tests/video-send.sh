{{outputs}}
# in.y4m: 30 frames (1 s) of 64x48 of luma 200.
python3 - "$work/in.y4m" <<'PY'
import sys
w, h = 64, 48
with open(sys.argv[1], "wb") as f:
    f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
    for _ in range(30):
        f.write(b"FRAME\n" + bytes([200]) * (w * h) + bytes([128]) * (w * h // 2))
PY
"$wasmrtc" run "$handler" --input "$work/in.y4m" > "$work/events.jsonl"
within "$(output_values "$work/events.jsonl" brightness)" 196 204
