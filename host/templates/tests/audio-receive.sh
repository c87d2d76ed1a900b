{{peak}}
# 1 s of the tone at its default volume (0.5: a peak of about 16383).
"$wasmrtc" run "$handler" --duration 1 --output "$work/out.wav" > "$work/events.jsonl"
peak "$work/out.wav" 15500 16800
