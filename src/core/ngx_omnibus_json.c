
/*
 * JSON: strict validation of message bodies with yajl's stream parser
 * (no comments, no trailing garbage, bounded depth) and a pass of our own
 * for strict UTF-8; NDJSON lines; and string escaping for the JSON this
 * module writes.
 *
 * yajl allocates a handle, a lexer and its stacks for every parse: five
 * malloc(), a realloc() and four free() calls per message.  A parse
 * never outlives ngx_omnibus_json_valid(), so they come from a per-worker
 * scratch area that each call starts afresh; only a parse that outgrows
 * it (deep nesting, long escaped keys) falls back to the heap.
 */


#include <ngx_omnibus_core.h>

#include <yajl/yajl_parse.h>

#if (__SSE2__)
#include <emmintrin.h>
#endif


#define NGX_OMNIBUS_JSON_SCRATCH  16384


typedef struct {
    ngx_uint_t  depth;
    ngx_uint_t  too_deep;
} ngx_omnibus_json_ctx_t;


/* every block starts with its size, so that realloc() can copy it */

typedef struct {
    size_t      size;
    size_t      pad;
} ngx_omnibus_json_block_t;


typedef struct {
    u_char     *last;
    u_char      start[NGX_OMNIBUS_JSON_SCRATCH];
} ngx_omnibus_json_scratch_t;


static ngx_omnibus_json_scratch_t  ngx_omnibus_json_scratch;


#define ngx_omnibus_json_in_scratch(p)                                       \
    ((u_char *) (p) >= ngx_omnibus_json_scratch.start                        \
     && (u_char *) (p) < ngx_omnibus_json_scratch.start                      \
                         + NGX_OMNIBUS_JSON_SCRATCH)


static void *
ngx_omnibus_json_malloc(void *ctx, size_t size)
{
    u_char                    *p;
    ngx_omnibus_json_block_t  *b;

    size = ngx_align(size, sizeof(ngx_omnibus_json_block_t));

    if ((size_t) (ngx_omnibus_json_scratch.start + NGX_OMNIBUS_JSON_SCRATCH
                  - ngx_omnibus_json_scratch.last)
        >= size + sizeof(ngx_omnibus_json_block_t))
    {
        p = ngx_omnibus_json_scratch.last;
        ngx_omnibus_json_scratch.last = p + sizeof(ngx_omnibus_json_block_t)
                                        + size;

    } else {
        p = malloc(size + sizeof(ngx_omnibus_json_block_t));
        if (p == NULL) {
            return NULL;
        }
    }

    b = (ngx_omnibus_json_block_t *) p;
    b->size = size;

    return p + sizeof(ngx_omnibus_json_block_t);
}


static void
ngx_omnibus_json_free(void *ctx, void *ptr)
{
    /* scratch blocks go all at once, when the next parse starts */

    if (ptr && !ngx_omnibus_json_in_scratch(ptr)) {
        free((u_char *) ptr - sizeof(ngx_omnibus_json_block_t));
    }
}


static void *
ngx_omnibus_json_realloc(void *ctx, void *ptr, size_t size)
{
    u_char                    *p, *n;
    ngx_omnibus_json_block_t  *b;

    if (ptr == NULL) {
        return ngx_omnibus_json_malloc(ctx, size);
    }

    p = (u_char *) ptr - sizeof(ngx_omnibus_json_block_t);
    b = (ngx_omnibus_json_block_t *) p;
    size = ngx_align(size, sizeof(ngx_omnibus_json_block_t));

    if (!ngx_omnibus_json_in_scratch(ptr)) {
        n = realloc(p, size + sizeof(ngx_omnibus_json_block_t));
        if (n == NULL) {
            return NULL;
        }

        b = (ngx_omnibus_json_block_t *) n;
        b->size = size;

        return n + sizeof(ngx_omnibus_json_block_t);
    }

    /*
     * yajl's stacks grow by realloc() of the newest block, the one that
     * ends where the free space starts: extend it in place
     */

    if ((u_char *) ptr + b->size == ngx_omnibus_json_scratch.last
        && (size_t) (ngx_omnibus_json_scratch.start
                     + NGX_OMNIBUS_JSON_SCRATCH - (u_char *) ptr)
           >= size)
    {
        b->size = size;
        ngx_omnibus_json_scratch.last = (u_char *) ptr + size;
        return ptr;
    }

    n = ngx_omnibus_json_malloc(ctx, size);
    if (n == NULL) {
        return NULL;
    }

    ngx_memcpy(n, ptr, ngx_min(b->size, size));

    return n;
}


static yajl_alloc_funcs  ngx_omnibus_json_alloc_funcs = {
    ngx_omnibus_json_malloc,
    ngx_omnibus_json_realloc,
    ngx_omnibus_json_free,
    NULL
};


static int
ngx_omnibus_json_open(void *data)
{
    ngx_omnibus_json_ctx_t *ctx = data;

    if (++ctx->depth > NGX_OMNIBUS_JSON_DEPTH) {
        ctx->too_deep = 1;
        return 0;
    }

    return 1;
}


static int
ngx_omnibus_json_close(void *data)
{
    ngx_omnibus_json_ctx_t *ctx = data;

    ctx->depth--;

    return 1;
}


static int
ngx_omnibus_json_key(void *data, const unsigned char *key, size_t len)
{
    return 1;
}


static int
ngx_omnibus_json_number(void *data, const char *num, size_t len)
{
    /* any length: yajl only range-checks numbers it converts */
    return 1;
}


static yajl_callbacks  ngx_omnibus_json_callbacks = {
    NULL,                                  /* null */
    NULL,                                  /* boolean */
    NULL,                                  /* integer */
    NULL,                                  /* double */
    ngx_omnibus_json_number,               /* number */
    NULL,                                  /* string */
    ngx_omnibus_json_open,                 /* start map */
    ngx_omnibus_json_key,                  /* map key */
    ngx_omnibus_json_close,                /* end map */
    ngx_omnibus_json_open,                 /* start array */
    ngx_omnibus_json_close                 /* end array */
};


/*
 * yajl checks UTF-8 loosely: overlong forms, surrogates and code points
 * past U+10FFFF pass, and an escaped lone surrogate becomes '?'.  This
 * pass over a document yajl accepted closes those gaps (RFC 3629, and
 * RFC 8259's escapes).  Backslashes are inside strings only, so it looks
 * at nothing but them and the bytes past ASCII, skipped sixteen bytes at
 * a time (SSE2, in every x86-64) or eight.
 */

#define ngx_omnibus_json_has(v, c)                                          \
    ((((v) ^ (0x0101010101010101ULL * (c))) - 0x0101010101010101ULL)      \
     & ~((v) ^ (0x0101010101010101ULL * (c))) & 0x8080808080808080ULL)

static ngx_int_t
ngx_omnibus_json_strict(u_char *p, size_t len, ngx_str_t *err)
{
    u_char      *start, *last, c;
    uint32_t     cp, low;
    uint64_t     v;
    const char  *why;
#if (__SSE2__)
    __m128i      x, backslash;

    backslash = _mm_set1_epi8('\\');
#endif

    start = p;
    last = p + len;

    while (p < last) {

#if (__SSE2__)
        if (last - p >= 16) {
            x = _mm_loadu_si128((const __m128i *) p);

            if ((_mm_movemask_epi8(x)
                 | _mm_movemask_epi8(_mm_cmpeq_epi8(x, backslash)))
                == 0)
            {
                p += 16;
                continue;
            }
        }
#endif

        if (last - p >= 8) {
            ngx_memcpy(&v, p, 8);

            if ((v & 0x8080808080808080ULL) == 0
                && !(ngx_omnibus_json_has(v, '\\')))
            {
                p += 8;
                continue;
            }
        }

        c = *p;

        if (c < 0x80) {
            if (c != '\\') {
                p++;
                continue;
            }

            if (p[1] != 'u') {
                p += 2;
                continue;
            }

            /* yajl has checked that four hex digits follow */

            cp = ngx_hextoi(p + 2, 4);

            if (cp >= 0xdc00 && cp <= 0xdfff) {
                why = "a low surrogate escape without its high half";
                goto invalid;
            }

            if (cp >= 0xd800 && cp <= 0xdbff) {
                low = (last - p >= 12 && p[6] == '\\' && p[7] == 'u')
                      ? (uint32_t) ngx_hextoi(p + 8, 4) : 0;

                if (low < 0xdc00 || low > 0xdfff) {
                    why = "a high surrogate escape without its low half";
                    goto invalid;
                }

                p += 12;
                continue;
            }

            p += 6;
            continue;
        }

        why = "invalid UTF-8";

        if (c >= 0xc2 && c <= 0xdf) {
            if (last - p < 2 || (p[1] & 0xc0) != 0x80) {
                goto invalid;
            }

            p += 2;
            continue;
        }

        if (c >= 0xe0 && c <= 0xef) {
            if (last - p < 3
                || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80
                || (c == 0xe0 && p[1] < 0xa0)         /* overlong */
                || (c == 0xed && p[1] > 0x9f))        /* surrogate */
            {
                goto invalid;
            }

            p += 3;
            continue;
        }

        if (c >= 0xf0 && c <= 0xf4) {
            if (last - p < 4
                || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80
                || (p[3] & 0xc0) != 0x80
                || (c == 0xf0 && p[1] < 0x90)         /* overlong */
                || (c == 0xf4 && p[1] > 0x8f))        /* past U+10FFFF */
            {
                goto invalid;
            }

            p += 4;
            continue;
        }

        goto invalid;
    }

    return NGX_OK;

invalid:

    err->len = ngx_snprintf(err->data, err->len, "body is not valid JSON "
                            "(near byte %uz): %s", (size_t) (p - start), why)
               - err->data;

    return NGX_DECLINED;
}


/* NGX_OK, or NGX_DECLINED with a reason in err */

ngx_int_t
ngx_omnibus_json_valid(u_char *p, size_t len, ngx_str_t *err)
{
    size_t                   at;
    u_char                  *msg, *e;
    yajl_handle              h;
    yajl_status              st;
    ngx_omnibus_json_ctx_t   ctx;

    ctx.depth = 0;
    ctx.too_deep = 0;

    ngx_omnibus_json_scratch.last = ngx_omnibus_json_scratch.start;

    h = yajl_alloc(&ngx_omnibus_json_callbacks, &ngx_omnibus_json_alloc_funcs,
                   &ctx);
    if (h == NULL) {
        return NGX_ERROR;
    }

    st = yajl_parse(h, p, len);

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    if (st == yajl_status_ok) {
        yajl_free(h);
        return ngx_omnibus_json_strict(p, len, err);
    }

    at = yajl_get_bytes_consumed(h);

    if (ctx.too_deep) {
        err->len = ngx_snprintf(err->data, err->len, "JSON nesting is "
                                "deeper than %d levels (at byte %uz)",
                                NGX_OMNIBUS_JSON_DEPTH, at)
                   - err->data;
        yajl_free(h);
        return NGX_DECLINED;
    }

    msg = yajl_get_error(h, 0, NULL, 0);

    e = ngx_snprintf(err->data, err->len, "body is not valid JSON "
                     "(near byte %uz): %s", at,
                     msg ? (char *) msg : "parse error");

    /* yajl ends its messages with a newline */
    while (e > err->data && (e[-1] == '\n' || e[-1] == ' ')) {
        e--;
    }

    err->len = e - err->data;

    if (msg) {
        yajl_free_error(h, msg);
    }

    yajl_free(h);

    return NGX_DECLINED;
}


size_t
ngx_omnibus_json_escaped_len(u_char *src, size_t len)
{
    return len + ngx_escape_json(NULL, src, len);
}


u_char *
ngx_omnibus_json_escape(u_char *dst, u_char *src, size_t len)
{
    return (u_char *) ngx_escape_json(dst, src, len);
}


/*
 * The next line of an NDJSON body from *pos, without its LF or CR LF:
 * NGX_OK and *pos past it, or NGX_DONE at the end.  Empty lines come too,
 * for the line numbers of the results.
 */

ngx_int_t
ngx_omnibus_ndjson_next(u_char **pos, u_char *last, ngx_str_t *line)
{
    u_char  *p, *nl;

    p = *pos;

    if (p >= last) {
        return NGX_DONE;
    }

    nl = ngx_strlchr(p, last, '\n');
    if (nl == NULL) {
        nl = last;
    }

    line->data = p;
    line->len = nl - p;

    if (line->len && p[line->len - 1] == '\r') {
        line->len--;
    }

    *pos = (nl < last) ? nl + 1 : last;

    return NGX_OK;
}
