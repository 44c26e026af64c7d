/* A plain shared library (not a Python module) that the native tests load
 * with ctypes after tracking has started: its malloc must be recorded. */
#include <stdlib.h>

void *
mlnat2_alloc(size_t size)
{
    char *p = malloc(size);
    if (p)
        p[0] = 1;
    return p;
}

void
mlnat2_free(void *p)
{
    free(p);
}
