/* LOCAL ONLY (not committed): link stand-in until reader.c lands. */
#include "analysis/reader.h"
#include <stdio.h>
ml_reader *ml_reader_open(const char *path, char *err, size_t errcap) { snprintf(err, errcap, "reader not built yet"); return NULL; }
void ml_reader_free(ml_reader *r) {}
const char *ml_reader_meta(const ml_reader *r, size_t *len) { *len = 0; return NULL; }
int ml_reader_next(ml_reader *r, ml_event *ev) { return 0; }
void ml_reader_rewind(ml_reader *r) {}
const char *ml_reader_error(const ml_reader *r) { return ""; }
int ml_reader_truncated(const ml_reader *r) { return 0; }
const ml_code_info *ml_reader_code(const ml_reader *r, ml_code_id id) { return NULL; }
const ml_frame_info *ml_reader_frame(const ml_reader *r, ml_frame_id id) { return NULL; }
int32_t ml_reader_frame_line(const ml_reader *r, ml_frame_id id) { return 0; }
void ml_reader_live_foreach(const ml_reader *r, ml_live_fn fn, void *arg) {}
