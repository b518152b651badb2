
/*
 * Topics and patterns: ngx_omnibus_topic_valid(), ngx_omnibus_pattern_valid()
 * and ngx_omnibus_pattern_match().
 *
 * The input is "PATTERN\nTOPIC"; without a '\n' it is both.  Each half is
 * an exact-size copy, not NUL-terminated, as a URI segment is.
 *
 * Properties: both validators agree with a token-wise restatement of the
 * README's rules; a valid topic is a valid pattern that matches itself,
 * and ">" matches every valid topic; for a valid pattern and a valid
 * topic (the only calls the module makes), the match is that of a
 * token-wise reference matcher.
 */


#include "fuzz_common.h"
#include <ngx_omnibus_core.h>


#define FUZZ_TOKENS  256                 /* 255 bytes hold at most 128 */


typedef struct {
    u_char      *data;
    size_t       len;
} fuzz_token_t;


static ngx_uint_t
fuzz_split(u_char *p, size_t len, fuzz_token_t *tokens)
{
    u_char      *last, *dot;
    ngx_uint_t   n;

    last = p + len;
    n = 0;

    for ( ;; ) {
        for (dot = p; dot < last && *dot != '.'; dot++) { /* void */ }

        tokens[n].data = p;
        tokens[n].len = dot - p;
        n++;

        if (dot == last) {
            return n;
        }

        p = dot + 1;
    }
}


static ngx_uint_t
fuzz_token_valid(fuzz_token_t *t)
{
    u_char  c;
    size_t  i;

    if (t->len == 0) {
        return 0;
    }

    for (i = 0; i < t->len; i++) {
        c = t->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == ':' || c == '-'))
        {
            return 0;
        }
    }

    return 1;
}


static ngx_uint_t
fuzz_is(fuzz_token_t *t, u_char c)
{
    return t->len == 1 && t->data[0] == c;
}


/* a topic, or with wildcards a pattern: "*" anywhere, ">" at the end */

static ngx_uint_t
fuzz_ref_valid(u_char *p, size_t len, ngx_uint_t wildcards)
{
    ngx_uint_t    i, n;
    fuzz_token_t  t[FUZZ_TOKENS];

    if (len == 0 || len > NGX_OMNIBUS_TOPIC_MAX) {
        return 0;
    }

    n = fuzz_split(p, len, t);

    for (i = 0; i < n; i++) {
        if (wildcards
            && (fuzz_is(&t[i], '*') || (fuzz_is(&t[i], '>') && i == n - 1)))
        {
            continue;
        }

        if (!fuzz_token_valid(&t[i])) {
            return 0;
        }
    }

    return 1;
}


static ngx_uint_t
fuzz_ref_match(u_char *pattern, size_t plen, u_char *topic, size_t tlen)
{
    ngx_uint_t    i, np, nt;
    fuzz_token_t  p[FUZZ_TOKENS], t[FUZZ_TOKENS];

    np = fuzz_split(pattern, plen, p);
    nt = fuzz_split(topic, tlen, t);

    for (i = 0; i < np; i++) {

        if (fuzz_is(&p[i], '>')) {
            return nt > i;                   /* one token or more */
        }

        if (i == nt) {
            return 0;
        }

        if (fuzz_is(&p[i], '*')) {
            continue;
        }

        if (p[i].len != t[i].len
            || ngx_memcmp(p[i].data, t[i].data, p[i].len) != 0)
        {
            return 0;
        }
    }

    return np == nt;
}


/* a topic alone: the properties that need no pattern */

static void
fuzz_topic(ngx_str_t *topic)
{
    ngx_uint_t  valid;
    ngx_str_t   any = ngx_string(">");

    valid = (ngx_omnibus_topic_valid(topic) == NGX_OK);

    fuzz_assert(valid == fuzz_ref_valid(topic->data, topic->len, 0));

    if (!valid) {
        return;
    }

    fuzz_assert(ngx_omnibus_pattern_valid(topic) == NGX_OK);
    fuzz_assert(ngx_omnibus_pattern_match(topic, topic->data, topic->len)
                == 1);
    fuzz_assert(ngx_omnibus_pattern_match(&any, topic->data, topic->len)
                == 1);

    (void) ngx_omnibus_topic_hash(topic->data, topic->len);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char      *nl;
    ngx_int_t    m;
    ngx_str_t    pattern, topic;
    ngx_uint_t   pvalid;

    fuzz_init();

    nl = memchr(data, '\n', size);

    if (nl) {
        pattern.len = nl - data;
        topic.len = size - pattern.len - 1;
        pattern.data = fuzz_dup(data, pattern.len, 0);
        topic.data = fuzz_dup(nl + 1, topic.len, 0);

    } else {
        pattern.len = size;
        topic.len = size;
        pattern.data = fuzz_dup(data, size, 0);
        topic.data = fuzz_dup(data, size, 0);
    }

    fuzz_topic(&topic);

    if (nl) {
        fuzz_topic(&pattern);
    }

    pvalid = (ngx_omnibus_pattern_valid(&pattern) == NGX_OK);

    fuzz_assert(pvalid == fuzz_ref_valid(pattern.data, pattern.len, 1));

    if (pvalid && ngx_omnibus_topic_valid(&topic) == NGX_OK) {
        m = ngx_omnibus_pattern_match(&pattern, topic.data, topic.len);

        fuzz_assert(m == 0 || m == 1);
        fuzz_assert((ngx_uint_t) m
                    == fuzz_ref_match(pattern.data, pattern.len,
                                      topic.data, topic.len));
    }

    free(pattern.data);
    free(topic.data);

    return 0;
}
