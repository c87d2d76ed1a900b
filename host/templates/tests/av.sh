{{wav}}
{{peak}}
# The audio comes back as it went in.
"$wasmrtc" run "$handler" --input "$work/in.wav" --output "$work/out.wav" > "$work/events.jsonl"
peak "$work/out.wav" 15200 16800
