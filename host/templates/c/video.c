// Video send-receive: returns every frame flipped vertically (rows in reverse order).
//
// The bindings (`handler_component.h`/`.c`) are generated from wit/handler.wit by
// `wit-bindgen c` when `wasmrtc build` runs. A C handler defines all six exports of
// `wasmrtc:handler/handler`. Ownership follows the canonical ABI: arguments are the
// callee's to free (or to hand back as the return value), and lists in a return
// value are freed with free() after the host has copied them.

#include <stdlib.h>
#include <string.h>

#include "handler_component.h"

typedef exports_wasmrtc_handler_handler_video_frame_t video_frame_t;

void exports_wasmrtc_handler_handler_describe(exports_wasmrtc_handler_handler_stream_spec_t *ret) {
  // Video send-receive in RGB; no inputs, no outputs.
  *ret = (exports_wasmrtc_handler_handler_stream_spec_t){
      .modality = WASMRTC_HANDLER_TYPES_MODALITY_VIDEO,
      .mode = WASMRTC_HANDLER_TYPES_MODE_SEND_RECEIVE,
      .inputs = {NULL, 0},
      .outputs = {NULL, 0},
      .input_sample_rate = 48000,
      .output_sample_rate = 24000,
      .video_format = WASMRTC_HANDLER_TYPES_PIXEL_FORMAT_RGB24,
      .fps = 30,
  };
}

void exports_wasmrtc_handler_handler_set_inputs(exports_wasmrtc_handler_handler_list_value_t *values) {
  exports_wasmrtc_handler_handler_list_value_free(values);
}

void exports_wasmrtc_handler_handler_on_audio(exports_wasmrtc_handler_handler_audio_frame_t *frame) {
  exports_wasmrtc_handler_handler_audio_frame_free(frame);
}

bool exports_wasmrtc_handler_handler_next_audio(exports_wasmrtc_handler_handler_audio_frame_t *ret) {
  (void)ret;
  return false;
}

bool exports_wasmrtc_handler_handler_next_video(video_frame_t *ret) {
  (void)ret;
  return false;
}

bool exports_wasmrtc_handler_handler_on_video(video_frame_t *frame, video_frame_t *ret) {
  // RGB: one plane of `height` rows of `width * 3` bytes, rows swapped through a buffer.
  size_t stride = (size_t)frame->width * 3, rows = frame->height;
  uint8_t *data = frame->data.ptr;
  uint8_t *tmp = malloc(stride ? stride : 1);
  if (tmp != NULL && stride > 0 && rows <= frame->data.len / stride) {
    for (size_t top = 0, bottom = rows - 1; rows > 0 && top < bottom; top++, bottom--) {
      memcpy(tmp, data + top * stride, stride);
      memcpy(data + top * stride, data + bottom * stride, stride);
      memcpy(data + bottom * stride, tmp, stride);
    }
  }
  free(tmp);
  // The frame, its buffer included, becomes the return value: no copy.
  *ret = *frame;
  return true;
}
