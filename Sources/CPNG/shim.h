// Thin shim: libpng's simplified read/write API (png_image).
#include <png.h>
