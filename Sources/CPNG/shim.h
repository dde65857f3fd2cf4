// Thin shim: libpng's simplified read/write API (png_image), and one writer over the full API
// for what the simplified one cannot choose: zlib's level and strategy and the row filters.
#ifndef SEGDIST_CPNG_SHIM_H
#define SEGDIST_CPNG_SHIM_H
#include <png.h>
#include <zlib.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/// libpng's default row filters (each row's chosen by trying them all), which Swift cannot import as a macro.
static const int segdist_png_all_filters = PNG_ALL_FILTERS;

/// Where segdist_png_encode puts the file: on the heap, so that it survives libpng's longjmp.
typedef struct { unsigned char *bytes; size_t count, capacity; char problem[128]; } segdist_png_sink;

static void segdist_png_put(png_structp png, png_bytep data, size_t n) {
    segdist_png_sink *sink = (segdist_png_sink *)png_get_io_ptr(png);
    if (sink->count + n > sink->capacity) {
        size_t capacity = sink->capacity * 2 > sink->count + n ? sink->capacity * 2 : sink->count + n;
        unsigned char *grown = (unsigned char *)realloc(sink->bytes, capacity);
        if (!grown) png_error(png, "out of memory");
        sink->bytes = grown; sink->capacity = capacity;
    }
    memcpy(sink->bytes + sink->count, data, n);
    sink->count += n;
}

static void segdist_png_flush(png_structp png) { (void)png; }

/// libpng's errors end here: the message is kept for the caller (not printed) and the write unwinds.
static void segdist_png_fail(png_structp png, png_const_charp message) {
    segdist_png_sink *sink = (segdist_png_sink *)png_get_error_ptr(png);
    strncpy(sink->problem, message, sizeof(sink->problem) - 1);
    png_longjmp(png, 1);
}

static void segdist_png_warn(png_structp png, png_const_charp message) { (void)png; (void)message; }

/// An 8-bit grey (channels 1) or RGB (channels 3) image, rows top to bottom, as PNG bytes in
/// sink->bytes (malloc'd: the caller frees them, also on failure) with zlib's `level` (0-9) and
/// `strategy` (Z_DEFAULT_STRATEGY, Z_RLE, ...) and libpng's row `filters` (PNG_NO_FILTERS,
/// PNG_ALL_FILTERS, ...). 0 on success; -1 with sink->problem saying why.
static inline int segdist_png_encode(const unsigned char *pixels, int width, int height, int channels, int level,
                                     int strategy, int filters, segdist_png_sink *sink) {
    sink->bytes = NULL; sink->count = sink->capacity = 0; sink->problem[0] = 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, sink, segdist_png_fail, segdist_png_warn);
    if (!png) { strcpy(sink->problem, "out of memory"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_write_struct(&png, NULL); strcpy(sink->problem, "out of memory"); return -1; }
    if (setjmp(png_jmpbuf(png))) { png_destroy_write_struct(&png, &info); return -1; }
    png_set_write_fn(png, sink, segdist_png_put, segdist_png_flush);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_sRGB(png, info, PNG_sRGB_INTENT_PERCEPTUAL);   // as libpng's simplified writer marks 8-bit images
    png_set_compression_level(png, level);
    png_set_compression_strategy(png, strategy);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, filters);
    png_write_info(png, info);
    for (int y = 0; y < height; y++) png_write_row(png, pixels + (size_t)y * (size_t)width * (size_t)channels);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}
#endif
