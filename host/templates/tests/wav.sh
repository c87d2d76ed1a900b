# in.wav: 1 s of a 440 Hz sine at 48 kHz, mono, peak 16000 (about half of full scale).
python3 - "$work/in.wav" <<'PY'
import math, struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(48000)
    w.writeframes(b"".join(struct.pack("<h", round(16000 * math.sin(2 * math.pi * 440 * i / 48000))) for i in range(48000)))
PY
