// Video send-receive: returns every frame flipped vertically (rows in reverse order).
// The C twin of `examples-guests/flip` (Rust).
//
// The bindings (`handler_component.h`/`.c`) are generated from wit/handler.wit by
// `wit-bindgen c` at build time (see ../build.sh). A C handler defines all six
// exports of `wasmrtc:handler/handler`. Ownership follows the canonical ABI:
// arguments are the callee's to free (or to hand back as the return value), and
// lists in a return value are freed with free() after the host has copied them.

#include <stdlib.h>
#include <string.h>

#include "handler_component.h"

typedef exports_wasmrtc_handler_handler_video_frame_t video_frame_t;

void exports_wasmrtc_handler_handler_describe(exports_wasmrtc_handler_handler_stream_spec_t *ret) {
  // Video send-receive in RGB; no inputs, no outputs; the rates are FastRTC's defaults.
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

// Reverse the order of the first `rows` rows of `stride` bytes of `plane`, in place,
// one row at a time through a stack buffer (memcpy is the fast path: no per-pixel code).
// A plane shorter than `stride * rows` (a malformed frame) is left untouched.
static void flip_plane(uint8_t *plane, size_t len, size_t stride, size_t rows) {
  if (stride == 0 || rows > len / stride) return;
  uint8_t tmp[4096];
  for (size_t top = 0, bottom = rows - 1; top < bottom; top++, bottom--) {
    uint8_t *a = plane + top * stride, *b = plane + bottom * stride;
    for (size_t done = 0; done < stride; done += sizeof tmp) {
      size_t n = stride - done < sizeof tmp ? stride - done : sizeof tmp;
      memcpy(tmp, a + done, n);
      memcpy(a + done, b + done, n);
      memcpy(b + done, tmp, n);
    }
  }
}

bool exports_wasmrtc_handler_handler_on_video(video_frame_t *frame, video_frame_t *ret) {
  size_t w = frame->width, h = frame->height;
  uint8_t *data = frame->data.ptr;
  size_t len = frame->data.len;
  switch (frame->format) {
    case WASMRTC_HANDLER_TYPES_PIXEL_FORMAT_RGB24:
    case WASMRTC_HANDLER_TYPES_PIXEL_FORMAT_BGR24:
      // Packed formats: one plane of `h` rows of `w * 3` bytes.
      flip_plane(data, len, w * 3, h);
      break;
    case WASMRTC_HANDLER_TYPES_PIXEL_FORMAT_I420: {
      // Y (`w * h`), then U and V (each `ceil(w/2) * ceil(h/2)`), each flipped on its own.
      size_t cw = (w + 1) / 2, ch = (h + 1) / 2;
      size_t y_len = w * h < len ? w * h : len;
      size_t rest = len - y_len;
      size_t u_len = cw * ch < rest ? cw * ch : rest;
      flip_plane(data, y_len, w, h);
      flip_plane(data + y_len, u_len, cw, ch);
      flip_plane(data + y_len + u_len, rest - u_len, cw, ch);
      break;
    }
  }
  // The frame, its buffer included, becomes the return value: no copy.
  *ret = *frame;
  return true;
}
