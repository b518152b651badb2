
/*
 * What every harness needs of NGINX before its first input: the page
 * size (pools), the cached time strings (ngx_log_error_core), and a log
 * whose messages are formatted in full and then counted, not written.
 *
 * Only for the harnesses in fuzz/: nothing here is part of the module.
 */


#ifndef _FUZZ_COMMON_H_INCLUDED_
#define _FUZZ_COMMON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <stdio.h>
#include <stdlib.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static ngx_log_t        fuzz_log;
static ngx_open_file_t  fuzz_log_file;
static ngx_uint_t       fuzz_logged;        /* messages since fuzz_reset() */
static u_char           fuzz_last[NGX_MAX_ERROR_STR];
static size_t           fuzz_last_len;


/* a broken property: abort() so that libFuzzer keeps the input */

#define fuzz_assert(expr)                                                   \
    do {                                                                    \
        if (!(expr)) {                                                      \
            fprintf(stderr, "%s:%d: property failed: %s\n",                 \
                    __FILE__, __LINE__, #expr);                             \
            abort();                                                        \
        }                                                                   \
    } while (0)


static void
fuzz_log_writer(ngx_log_t *log, ngx_uint_t level, u_char *buf, size_t len)
{
    fuzz_assert(len <= NGX_MAX_ERROR_STR);

    ngx_memcpy(fuzz_last, buf, len);
    fuzz_last_len = len;
    fuzz_logged++;
}


static ngx_inline void
fuzz_init(void)
{
    ngx_uint_t  n;

    if (fuzz_log.file) {
        return;
    }

    /* as ngx_os_init() and main() do */
    ngx_pagesize = getpagesize();
    ngx_cacheline_size = NGX_CPU_CACHE_LINE;
    for (n = ngx_pagesize; n >>= 1; ngx_pagesize_shift++) { /* void */ }

    ngx_time_init();
    ngx_use_stderr = 0;

    fuzz_log_file.fd = ngx_stderr;
    fuzz_log.file = &fuzz_log_file;
    fuzz_log.log_level = NGX_LOG_DEBUG;
    fuzz_log.writer = fuzz_log_writer;
}


static ngx_inline void
fuzz_reset(void)
{
    fuzz_logged = 0;
    fuzz_last_len = 0;
}


/* an exact-size heap copy, so that AddressSanitizer sees any overread */

static ngx_inline u_char *
fuzz_dup(const uint8_t *data, size_t size, ngx_uint_t nul)
{
    u_char  *p;

    /* malloc(0) is a valid, unreadable block under AddressSanitizer */
    p = malloc(size + (nul ? 1 : 0));
    if (p == NULL) {
        abort();
    }

    if (size) {
        ngx_memcpy(p, data, size);
    }

    if (nul) {
        p[size] = '\0';
    }

    return p;
}


#endif /* _FUZZ_COMMON_H_INCLUDED_ */
