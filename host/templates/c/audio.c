// Audio send-receive: plays the caller's audio back, scaled by a "gain" slider.
//
// The bindings (`handler_component.h`/`.c`) are generated from wit/handler.wit by
// `wit-bindgen c` when `wasmrtc build` runs. A C handler defines all six exports of
// `wasmrtc:handler/handler`. Ownership follows the canonical ABI: arguments are the
// callee's to free (or to hand back as the return value), and everything in a
// return value is freed with free() after the host has copied it.

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "handler_component.h"

typedef exports_wasmrtc_handler_handler_audio_frame_t audio_frame_t;

// At most this many frames are queued (1 s of 20 ms frames); older ones are dropped.
#define MAX_QUEUED 50

static double factor = 1.0;
// A ring of queued frames: `count` of them from `head`.
static audio_frame_t queue[MAX_QUEUED];
static size_t head, count;

void exports_wasmrtc_handler_handler_describe(exports_wasmrtc_handler_handler_stream_spec_t *ret) {
  // One input, a slider; its strings and the list are freed by the bindings afterwards.
  wasmrtc_handler_types_input_spec_t *gain = calloc(1, sizeof *gain);
  handler_component_string_dup(&gain->name, "gain");
  handler_component_string_dup(&gain->label, "Gain");
  gain->control.tag = WASMRTC_HANDLER_TYPES_CONTROL_SLIDER;
  gain->control.val.slider = (wasmrtc_handler_types_slider_t){
      .min = 0.0, .max = 2.0, .step = 0.01, .default_ = 1.0};
  *ret = (exports_wasmrtc_handler_handler_stream_spec_t){
      .modality = WASMRTC_HANDLER_TYPES_MODALITY_AUDIO,
      .mode = WASMRTC_HANDLER_TYPES_MODE_SEND_RECEIVE,
      .inputs = {gain, 1},
      .outputs = {NULL, 0},
      .input_sample_rate = 48000,
      .output_sample_rate = 48000,
      .video_format = WASMRTC_HANDLER_TYPES_PIXEL_FORMAT_BGR24,
      .fps = 30,
  };
}

void exports_wasmrtc_handler_handler_set_inputs(exports_wasmrtc_handler_handler_list_value_t *values) {
  if (values->len > 0 && values->ptr[0].tag == WASMRTC_HANDLER_TYPES_VALUE_NUMBER) {
    factor = values->ptr[0].val.number;
  }
  exports_wasmrtc_handler_handler_list_value_free(values);
}

void exports_wasmrtc_handler_handler_on_audio(audio_frame_t *frame) {
  int16_t *s = frame->samples.ptr;
  for (size_t i = 0; i < frame->samples.len; i++) {
    double v = rint(s[i] * factor);  // round half to even
    s[i] = v > 32767.0 ? 32767 : v < -32768.0 ? -32768 : (int16_t)v;
  }
  if (count == MAX_QUEUED) {  // drop the oldest
    exports_wasmrtc_handler_handler_audio_frame_free(&queue[head]);
    head = (head + 1) % MAX_QUEUED;
    count--;
  }
  queue[(head + count) % MAX_QUEUED] = *frame;  // keep the frame's buffer: no copy
  count++;
}

bool exports_wasmrtc_handler_handler_next_audio(audio_frame_t *ret) {
  if (count == 0) return false;
  *ret = queue[head];  // freed by the bindings once the host has copied it
  head = (head + 1) % MAX_QUEUED;
  count--;
  return true;
}

bool exports_wasmrtc_handler_handler_on_video(exports_wasmrtc_handler_handler_video_frame_t *frame,
                                              exports_wasmrtc_handler_handler_video_frame_t *ret) {
  (void)ret;
  exports_wasmrtc_handler_handler_video_frame_free(frame);
  return false;
}

bool exports_wasmrtc_handler_handler_next_video(exports_wasmrtc_handler_handler_video_frame_t *ret) {
  (void)ret;
  return false;
}
