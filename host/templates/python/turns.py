"""Turn-taking (FastRTC's `ReplyOnPause`): when the caller pauses, plays their
utterance back to them and emits its length."""

from wasmrtc_handler import *

#: Rate of the utterances the host hands over, and of the reply.
RATE = 16_000
#: Samples of reply per `next_audio` (100 ms): an interruption drops the rest here.
CHUNK = RATE // 10


class Parrot(TurnTakingHandler):
    def __init__(self):
        #: The reply still to play.
        self.reply = []

    def describe(self):
        return spec(
            Modality.AUDIO,
            Mode.SEND_RECEIVE,
            input_sample_rate=RATE,
            output_sample_rate=RATE,
            outputs=[output("heard", "Utterance (s)", OutputKind.NUMBER)],
        )

    def describe_turns(self):
        return turn_taking(pause_ms=500, interruptible=True)

    def on_utterance(self, utterance):
        self.reply = list(utterance.samples[:: max(1, utterance.channels)])
        emit_outputs([Number(round(len(self.reply) / utterance.sample_rate, 2))])

    def next_audio(self):
        if not self.reply:
            return None
        chunk, self.reply = self.reply[:CHUNK], self.reply[CHUNK:]
        return AudioFrame(sample_rate=RATE, channels=1, samples=chunk)

    def on_interrupt(self):
        self.reply = []


Handler = export(Parrot)
Turns = export_turns(Parrot)
