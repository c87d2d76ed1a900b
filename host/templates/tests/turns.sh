{{wav}}
# Turn-taking is declared; a reply needs real speech (the voice detector ignores a
# plain tone), so the run over the generated input only has to end cleanly. Try your
# own recording: wasmrtc run target/wasmrtc/{{name}}.wasm --input me.wav --output reply.wav
"$wasmrtc" check "$handler" | grep -q "turn-taking"
"$wasmrtc" run "$handler" --input "$work/in.wav" --output "$work/out.wav" > "$work/events.jsonl"
