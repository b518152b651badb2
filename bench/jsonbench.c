
/*
 * bench/jsonbench: the validation of JSON bodies alone, in MB/s per core,
 * on generated documents; built and run by bench/jsonbench.sh.
 *
 *   old       yajl's stream parser with the depth callbacks and the
 *             scratch allocator the module had, then its strict UTF-8
 *             and surrogate pass (restated here: it is gone from src/)
 *   new       ngx_omnibus_json_valid(), src/core/ngx_omnibus_json.c as
 *             the module compiles it (SSE2 on x86-64)
 *   new/8     the same file compiled without __SSE2__: the eight bytes
 *             at a time fallback
 *   simdjson  simdjson's DOM parser (bench/jsonbench-simdjson.cc), when
 *             built with JSONBENCH_SIMDJSON
 *
 * Documents are deterministic: "orders" are objects of order lines
 * (short strings, some of them non-ASCII, a few escapes, integers,
 * decimals, exponents, nested arrays, true/false/null), compact as
 * producers send them; "padded" is {"seq":N,"pad":"xxx..."}, the body
 * of bench/run.sh.  Each size has a pool of different documents, so
 * that the branch predictor cannot learn one by heart.
 *
 *   jsonbench [-t SECONDS_PER_RUN] [-r RUNS] [-s SHAPE] [-z SIZE]
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_omnibus_json.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_parse.h>

#if (__SSE2__)
#include <emmintrin.h>
#endif


ngx_int_t ngx_omnibus_json_valid_swar(u_char *p, size_t len,
    ngx_str_t *err);

#if (JSONBENCH_SIMDJSON)
size_t jsonbench_simdjson_padding(void);
const char *jsonbench_simdjson_name(void);
int jsonbench_simdjson_valid(const char *p, size_t len);
#endif


/* what ngx_string.o refers to, from functions the validator never calls */

volatile ngx_cycle_t  *ngx_cycle;


void *
ngx_alloc(size_t size, ngx_log_t *log)
{
    abort();
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    abort();
}


/* the old path: yajl, then the strict pass */

#define BENCH_DEPTH    64
#define BENCH_ARENA    (1024 * 1024)


static u_char  bench_arena[BENCH_ARENA];
static size_t  bench_arena_used;


/* a bump allocator reset at each parse, as the module's scratch area */

static void *
bench_malloc(void *ctx, size_t size)
{
    u_char  *p;

    size = (size + 15) & ~(size_t) 15;

    if (bench_arena_used + size + 16 > BENCH_ARENA) {
        abort();
    }

    p = bench_arena + bench_arena_used;
    bench_arena_used += size + 16;
    memcpy(p, &size, sizeof(size_t));

    return p + 16;
}


static void
bench_free(void *ctx, void *ptr)
{
}


static void *
bench_realloc(void *ctx, void *ptr, size_t size)
{
    u_char  *n;
    size_t   old;

    if (ptr == NULL) {
        return bench_malloc(ctx, size);
    }

    memcpy(&old, (u_char *) ptr - 16, sizeof(size_t));

    n = bench_malloc(ctx, size);
    memcpy(n, ptr, old < size ? old : size);

    return n;
}


static yajl_alloc_funcs  bench_alloc_funcs = {
    bench_malloc, bench_realloc, bench_free, NULL
};


typedef struct {
    unsigned  depth;
    unsigned  too_deep;
} bench_ctx_t;


static int
bench_open(void *data)
{
    bench_ctx_t  *ctx = data;

    if (++ctx->depth > BENCH_DEPTH) {
        ctx->too_deep = 1;
        return 0;
    }

    return 1;
}


static int
bench_close(void *data)
{
    bench_ctx_t  *ctx = data;

    ctx->depth--;

    return 1;
}


static int
bench_key(void *data, const unsigned char *key, size_t len)
{
    return 1;
}


static int
bench_number(void *data, const char *num, size_t len)
{
    return 1;
}


static yajl_callbacks  bench_callbacks = {
    NULL, NULL, NULL, NULL, bench_number, NULL,
    bench_open, bench_key, bench_close, bench_open, bench_close
};


static unsigned
bench_hex4(const u_char *p)
{
    unsigned  i, v, c;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];
        v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }

    return v;
}


#define bench_has(v, c)                                                     \
    ((((v) ^ (0x0101010101010101ULL * (c))) - 0x0101010101010101ULL)      \
     & ~((v) ^ (0x0101010101010101ULL * (c))) & 0x8080808080808080ULL)


/* the module's strict pass over what yajl accepted, as it was */

static int
bench_strict(const u_char *p, size_t len)
{
    u_char          c;
    uint64_t        v;
    unsigned        cp, low;
    const u_char   *last;
#if (__SSE2__)
    __m128i         x, backslash;

    backslash = _mm_set1_epi8('\\');
#endif

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
            memcpy(&v, p, 8);

            if ((v & 0x8080808080808080ULL) == 0 && !bench_has(v, '\\')) {
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

            cp = bench_hex4(p + 2);

            if (cp >= 0xdc00 && cp <= 0xdfff) {
                return 0;
            }

            if (cp >= 0xd800 && cp <= 0xdbff) {
                low = (last - p >= 12 && p[6] == '\\' && p[7] == 'u')
                      ? bench_hex4(p + 8) : 0;

                if (low < 0xdc00 || low > 0xdfff) {
                    return 0;
                }

                p += 12;
                continue;
            }

            p += 6;
            continue;
        }

        if (c >= 0xc2 && c <= 0xdf) {
            if (last - p < 2 || (p[1] & 0xc0) != 0x80) {
                return 0;
            }

            p += 2;
            continue;
        }

        if (c >= 0xe0 && c <= 0xef) {
            if (last - p < 3
                || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80
                || (c == 0xe0 && p[1] < 0xa0)
                || (c == 0xed && p[1] > 0x9f))
            {
                return 0;
            }

            p += 3;
            continue;
        }

        if (c >= 0xf0 && c <= 0xf4) {
            if (last - p < 4
                || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80
                || (p[3] & 0xc0) != 0x80
                || (c == 0xf0 && p[1] < 0x90)
                || (c == 0xf4 && p[1] > 0x8f))
            {
                return 0;
            }

            p += 4;
            continue;
        }

        return 0;
    }

    return 1;
}


static int
bench_old(u_char *p, size_t len)
{
    bench_ctx_t  ctx;
    yajl_handle  h;
    yajl_status  st;

    ctx.depth = 0;
    ctx.too_deep = 0;
    bench_arena_used = 0;

    h = yajl_alloc(&bench_callbacks, &bench_alloc_funcs, &ctx);
    if (h == NULL) {
        abort();
    }

    st = yajl_parse(h, p, len);

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    return st == yajl_status_ok && bench_strict(p, len);
}


static int
bench_new(u_char *p, size_t len)
{
    u_char     buf[256];
    ngx_str_t  err;

    err.data = buf;
    err.len = sizeof(buf);

    return ngx_omnibus_json_valid(p, len, &err) == NGX_OK;
}


static int
bench_new8(u_char *p, size_t len)
{
    u_char     buf[256];
    ngx_str_t  err;

    err.data = buf;
    err.len = sizeof(buf);

    return ngx_omnibus_json_valid_swar(p, len, &err) == NGX_OK;
}


#if (JSONBENCH_SIMDJSON)

static int
bench_simdjson(u_char *p, size_t len)
{
    return jsonbench_simdjson_valid((const char *) p, len);
}

#endif


/* the documents */

typedef struct {
    u_char  *data;
    size_t   len;
    size_t   cap;
} bench_buf_t;


static uint64_t  bench_rand_state;


static uint32_t
bench_rand(uint32_t n)
{
    uint64_t  x;

    /* xorshift64* */
    x = bench_rand_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    bench_rand_state = x;

    return (uint32_t) ((x * 0x2545f4914f6cdd1dULL) >> 32) % n;
}


static void
bench_add(bench_buf_t *b, const char *fmt, ...)
{
    int      n;
    va_list  ap;

    for ( ;; ) {
        va_start(ap, fmt);
        n = vsnprintf((char *) b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);

        if (n < 0) {
            abort();
        }

        if (b->len + n < b->cap) {
            b->len += n;
            return;
        }

        b->cap = (b->cap + n) * 2;
        b->data = realloc(b->data, b->cap);
        if (b->data == NULL) {
            abort();
        }
    }
}


static const char  *bench_names[] = {
    "Anna Schmidt", "John Smith", "Zo\xc3\xab M\xc3\xbcller",
    "Jos\xc3\xa9 \xc3\x81lvarez", "\xc5\x81ukasz W\xc3\xb3jcik",
    "Chlo\xc3\xa9 Dubois", "Bj\xc3\xb6rn \xc3\x85ngstr\xc3\xb6m",
    "\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd \xd0\x9f\xd0\xb5\xd1\x82\xd1\x80"
    "\xd0\xbe\xd0\xb2",
    "Mary O'Neil", "Kenji Tanaka", "\xe6\x9d\x8e\xe5\xb0\x8f\xe9\xbe\x8d",
    "Nguy\xe1\xbb\x85n V\xc4\x83n An", "Priya Patel", "Lars Nilsen"
};

static const char  *bench_products[] = {
    "Espresso", "Caf\xc3\xa9 cr\xc3\xa8me", "Croissant", "Bagel",
    "Sm\xc3\xb8rbr\xc3\xb8" "d", "Cr\xc3\xaape Suzette", "Sparkling water",
    "P\xc3\xa3o de queijo", "Green tea \xe7\xb7\x91\xe8\x8c\xb6",
    "Oat milk 1 l", "Dark chocolate 70%", "Sandwich \\\"club\\\"",
    "Orange juice", "Muffin (blueberry)"
};

static const char  *bench_tags[] = {
    "food", "drink", "hot", "cold", "vegan", "gluten-free", "promo",
    "new", "\xf0\x9f\x94\xa5", "bio", "\\u00e9t\\u00e9", "bulk"
};

static const char  *bench_tiers[] = { "basic", "silver", "gold" };

#define bench_pick(a)  a[bench_rand(sizeof(a) / sizeof(a[0]))]


static void
bench_line(bench_buf_t *b, unsigned n)
{
    unsigned  i, ntags;

    bench_add(b, "{\"line\":%u,\"sku\":\"SKU-%05u\",\"name\":\"%s\","
              "\"qty\":%u,\"unit_price\":%u.%02u", n, bench_rand(100000),
              bench_pick(bench_products), 1 + bench_rand(12),
              bench_rand(80), bench_rand(100));

    if (bench_rand(4) == 0) {
        bench_add(b, ",\"discount\":-0.%02u", 1 + bench_rand(99));
    }

    bench_add(b, ",\"tags\":[");

    ntags = bench_rand(4);

    for (i = 0; i < ntags; i++) {
        bench_add(b, "%s\"%s\"", i ? "," : "", bench_pick(bench_tags));
    }

    bench_add(b, "],\"dims\":[%u,%u.%u,%ue-%u],\"gift\":%s}",
              1 + bench_rand(60), bench_rand(40), bench_rand(10),
              1 + bench_rand(9), 1 + bench_rand(3),
              bench_rand(5) ? "false" : "true");
}


static void
bench_order(bench_buf_t *b, unsigned nlines)
{
    unsigned  i;

    b->len = 0;

    bench_add(b, "{\"order_id\":\"ORD-%08u\",\"created\":\"2026-%02u-%02uT"
              "%02u:%02u:%02uZ\",\"customer\":{\"id\":%u,\"name\":\"%s\","
              "\"tier\":\"%s\"},\"currency\":\"EUR\",\"lines\":[",
              bench_rand(100000000), 1 + bench_rand(12), 1 + bench_rand(28),
              bench_rand(24), bench_rand(60), bench_rand(60),
              bench_rand(1000000), bench_pick(bench_names),
              bench_pick(bench_tiers));

    for (i = 0; i < nlines; i++) {
        if (i) {
            bench_add(b, ",");
        }

        bench_line(b, i + 1);
    }

    bench_add(b, "],\"total\":%u.%02u,\"paid\":%s,\"coupon\":null}",
              bench_rand(5000), bench_rand(100),
              bench_rand(2) ? "true" : "false");
}


/* an order with as many lines as brings it nearest to size */

static void
bench_order_of(bench_buf_t *b, size_t size, uint64_t seed)
{
    size_t    prev;
    unsigned  n;

    prev = 0;

    for (n = 0; /* void */; n++) {
        bench_rand_state = seed;
        bench_order(b, n);

        if (b->len >= size) {
            if (n && b->len - size > size - prev) {
                bench_rand_state = seed;
                bench_order(b, n - 1);
            }

            return;
        }

        prev = b->len;
    }
}


static void
bench_padded(bench_buf_t *b, size_t size, unsigned seq)
{
    b->len = 0;
    bench_add(b, "{\"seq\":%u,\"pad\":\"", seq);

    while (b->len < size - 2) {
        bench_add(b, "x");
    }

    bench_add(b, "\"}");
}


/* the runs */

typedef int (*bench_fn_t)(u_char *p, size_t len);

typedef struct {
    const char  *name;
    bench_fn_t   fn;
} bench_impl_t;


/* the thread's CPU time: other processes on the machine do not count */

static double
bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


/* the best of runs of about secs each, in MB/s */

static double
bench_run(bench_fn_t fn, u_char **docs, size_t *lens, unsigned ndocs,
    double secs, unsigned runs)
{
    double    start, t, best, bytes;
    unsigned  r, i, ok;

    best = 0;

    for (r = 0; r < runs; r++) {
        bytes = 0;
        ok = 1;
        start = bench_now();

        do {
            for (i = 0; i < ndocs; i++) {
                ok &= fn(docs[i], lens[i]);
                bytes += lens[i];
            }

            t = bench_now() - start;

        } while (t < secs);

        if (!ok) {
            fprintf(stderr, "jsonbench: a document was refused\n");
            exit(1);
        }

        if (bytes / t / 1e6 > best) {
            best = bytes / t / 1e6;
        }
    }

    return best;
}


/* answers that all the implementations must agree on */

static void
bench_check(bench_impl_t *impls, unsigned nimpls)
{
    u_char       *copy;
    size_t        len;
    unsigned      i, k;
    int           want;
    static char  *cases[] = {
        "1{\"a\":[1,-2.5e+3,true,false,null,\"\\ud83d\\ude00\\u00e9\"]}",
        "1 [ ] ",
        "1\"caf\xc3\xa9\"",
        "0{\"a\":1,}",
        "0{\"a\" 1}",
        "0[01]",
        "0[1.]",
        "0[1e]",
        "0[-]",
        "0[\"\\ud800\"]",
        "0[\"\\udc00\"]",
        "0[\"\xed\xa0\x80\"]",
        "0[\"\xc0\xaf\"]",
        "0[\"\xf4\x90\x80\x80\"]",
        "0[\"a\tb\"]",
        "0[\"\\x\"]",
        "0[tru]",
        "0[nul]",
        "0{} x",
        "0[1]]",
        "0",
        "0 ",
        "0{\"a\":\"unterminated",
        "0[\xc3\xa9]",
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        want = cases[i][0] == '1';
        len = strlen(cases[i] + 1);

        /* an exact copy: nothing past its end is valid to read */
        copy = malloc(len ? len : 1);
        memcpy(copy, cases[i] + 1, len);

        for (k = 0; k < nimpls; k++) {
            if (impls[k].fn(copy, len) != want) {
                fprintf(stderr, "jsonbench: %s %s '%s'\n", impls[k].name,
                        want ? "refuses" : "accepts", cases[i] + 1);
                exit(1);
            }
        }

        free(copy);
    }
}


int
main(int argc, char **argv)
{
    int            c;
    double         secs, mbs[8];
    size_t         sizes[] = { 256, 1024, 16384 }, lens[256], pad, total,
                   only;
    u_char        *docs[256];
    unsigned       runs, s, z, i, k, ndocs, nimpls;
    bench_buf_t    b;
    bench_impl_t   impls[8];
    const char    *shapes[] = { "orders", "padded" }, *shape;

    secs = 0.25;
    runs = 3;
    shape = NULL;
    total = 0;

    while ((c = getopt(argc, argv, "t:r:s:z:")) != -1) {
        switch (c) {
        case 't':
            secs = atof(optarg);
            break;
        case 'r':
            runs = atoi(optarg);
            break;
        case 's':
            shape = optarg;
            break;
        case 'z':
            total = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: jsonbench [-t SECONDS] [-r RUNS] "
                    "[-s orders|padded] [-z 256|1024|16384]\n");
            return 2;
        }
    }

    nimpls = 0;
    impls[nimpls].name = "yajl + strict pass (old)";
    impls[nimpls++].fn = bench_old;
    impls[nimpls].name = "new, SSE2";
    impls[nimpls++].fn = bench_new;
    impls[nimpls].name = "new, 8 bytes at a time";
    impls[nimpls++].fn = bench_new8;
    pad = 64;

#if (JSONBENCH_SIMDJSON)
    impls[nimpls].name = "simdjson (DOM)";
    impls[nimpls++].fn = bench_simdjson;
    pad = jsonbench_simdjson_padding();
#endif

    bench_check(impls, nimpls);

    b.cap = 65536;
    b.len = 0;
    b.data = malloc(b.cap);

    printf("| shape | size | avg bytes |");
    for (k = 0; k < nimpls; k++) {
        printf(" %s |", impls[k].name);
    }
    printf(" new / old |\n|---|---:|---:|");
    for (k = 0; k <= nimpls; k++) {
        printf("---:|");
    }
    printf("\n");

    only = total;

    for (s = 0; s < 2; s++) {
        for (z = 0; z < 3; z++) {

            if ((shape && strcmp(shape, shapes[s]) != 0)
                || (only && only != sizes[z]))
            {
                continue;
            }

            /* about 512 KiB of different documents */
            ndocs = 512 * 1024 / sizes[z];
            if (ndocs > 256) {
                ndocs = 256;
            }

            total = 0;

            for (i = 0; i < ndocs; i++) {
                if (s == 0) {
                    bench_order_of(&b, sizes[z],
                                   0x9e3779b97f4a7c15ULL * (i + 1));

                } else {
                    bench_padded(&b, sizes[z], i);
                }

                /* simdjson reads up to pad bytes past the end */
                docs[i] = calloc(1, b.len + pad);
                memcpy(docs[i], b.data, b.len);
                lens[i] = b.len;
                total += b.len;
            }

            for (k = 0; k < nimpls; k++) {
                mbs[k] = bench_run(impls[k].fn, docs, lens, ndocs, secs,
                                   runs);
            }

            printf("| %s | %zu | %zu |", shapes[s], sizes[z], total / ndocs);
            for (k = 0; k < nimpls; k++) {
                printf(" %.0f |", mbs[k]);
            }
            printf(" %.1f x |\n", mbs[1] / mbs[0]);
            fflush(stdout);

            for (i = 0; i < ndocs; i++) {
                free(docs[i]);
            }
        }
    }

#if (JSONBENCH_SIMDJSON)
    printf("\nsimdjson's implementation: %s\n", jsonbench_simdjson_name());
#endif

    return 0;
}
