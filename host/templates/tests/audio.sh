{{wav}}
{{peak}}
# At gain 0.5 the peak halves: 16000 -> 8000.
"$wasmrtc" run "$handler" --input "$work/in.wav" --output "$work/out.wav" --set gain=0.5 > "$work/events.jsonl"
peak "$work/out.wav" 7600 8400
