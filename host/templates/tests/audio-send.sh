{{wav}}
{{outputs}}
# A sine peaking at 16000 has an RMS level of about -9.3 dBFS.
"$wasmrtc" run "$handler" --input "$work/in.wav" > "$work/events.jsonl"
within "$(output_values "$work/events.jsonl" level)" -10.5 -8.0
