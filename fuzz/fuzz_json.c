
/*
 * ngx_omnibus_json_valid(): a message body, as is.
 *
 * Properties: the answer is NGX_OK or NGX_DECLINED, with an error that
 * fits the buffer it was given and names a byte within the body; it is
 * that of a reference made of yajl with the same depth bound, then, for
 * what yajl accepts, a strict check written independently, code point by
 * code point: UTF-8 as RFC 3629 has it, escaped surrogates in pairs, and
 * no vertical tab or form feed between tokens (yajl takes them for
 * whitespace, RFC 8259 does not); the validator must refuse at the byte
 * of the first such fault, and, in a document yajl found too deep, at
 * that of the first fault before the bracket too many or else there,
 * with the depth message; a valid document nests at most
 * NGX_OMNIBUS_JSON_DEPTH deep.
 *
 * And for the JSON the module writes: ngx_omnibus_json_escape() writes
 * what ngx_omnibus_json_escaped_len() says, and the input escaped and
 * quoted is a valid document exactly when the input is valid UTF-8.
 */


#include "fuzz_common.h"
#include <ngx_omnibus_core.h>

#include <yajl/yajl_parse.h>


#define FUZZ_ERR_LEN  255                /* as ngx_omnibus_publish_one() */


typedef struct {
    ngx_uint_t  depth;
    ngx_uint_t  too_deep;
} fuzz_ref_t;


static int
fuzz_ref_open(void *data)
{
    fuzz_ref_t *ref = data;

    if (++ref->depth > NGX_OMNIBUS_JSON_DEPTH) {
        ref->too_deep = 1;
        return 0;
    }

    return 1;
}


static int
fuzz_ref_close(void *data)
{
    fuzz_ref_t *ref = data;

    ref->depth--;

    return 1;
}


static yajl_callbacks  fuzz_ref_callbacks = {
    NULL, NULL, NULL, NULL, NULL, NULL,
    fuzz_ref_open, NULL, fuzz_ref_close, fuzz_ref_open, fuzz_ref_close
};


/* yajl with its default allocator: NGX_OK, NGX_DECLINED, or 2: too deep */

static ngx_int_t
fuzz_ref_valid(const u_char *p, size_t len)
{
    fuzz_ref_t   ref;
    yajl_handle  h;
    yajl_status  st;

    ref.depth = 0;
    ref.too_deep = 0;

    h = yajl_alloc(&fuzz_ref_callbacks, NULL, &ref);
    fuzz_assert(h != NULL);

    st = yajl_parse(h, p, len);

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (st == yajl_status_ok) {
        return NGX_OK;
    }

    return ref.too_deep ? 2 : NGX_DECLINED;
}


static ngx_int_t
fuzz_hex4(const u_char *p)
{
    ngx_uint_t  i;
    ngx_int_t   v;

    v = 0;

    for (i = 0; i < 4; i++) {
        if (p[i] >= '0' && p[i] <= '9') {
            v = v * 16 + p[i] - '0';

        } else if ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'f') {
            v = v * 16 + (p[i] | 0x20) - 'a' + 10;

        } else {
            return -1;
        }
    }

    return v;
}


/* the length of the UTF-8 sequence at p if RFC 3629 allows it, or 0 */

static size_t
fuzz_utf8(const u_char *p, size_t len)
{
    size_t    k, n;
    uint32_t  cp, min;

    if (p[0] < 0x80) {
        return 1;
    }

    if ((p[0] & 0xe0) == 0xc0) {
        n = 1; cp = p[0] & 0x1f; min = 0x80;

    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 2; cp = p[0] & 0x0f; min = 0x800;

    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 3; cp = p[0] & 0x07; min = 0x10000;

    } else {
        return 0;
    }

    if (n >= len) {
        return 0;
    }

    for (k = 1; k <= n; k++) {
        if ((p[k] & 0xc0) != 0x80) {
            return 0;
        }

        cp = (cp << 6) | (p[k] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return n + 1;
}


/*
 * A document yajl accepted (or its part before a bracket too many): the
 * offset of the first overlong, surrogate or out of range UTF-8 sequence,
 * of the first escaped lone surrogate in a string, or of the first
 * vertical tab or form feed outside strings, or -1.
 */

static size_t
fuzz_ref_strict(const u_char *p, size_t len)
{
    size_t       i, n;
    ngx_int_t    hi, lo;
    ngx_uint_t   in_string;

    in_string = 0;

    for (i = 0; i < len; /* void */) {

        if (p[i] == '"') {
            in_string = !in_string;
            i++;
            continue;
        }

        if (in_string && p[i] == '\\') {
            fuzz_assert(i + 1 < len);

            if (p[i + 1] != 'u') {
                i += 2;
                continue;
            }

            fuzz_assert(i + 6 <= len);
            hi = fuzz_hex4(&p[i + 2]);
            fuzz_assert(hi >= 0);

            if (hi >= 0xdc00 && hi <= 0xdfff) {
                return i;
            }

            if (hi >= 0xd800 && hi <= 0xdbff) {
                lo = (i + 12 <= len && p[i + 6] == '\\' && p[i + 7] == 'u')
                     ? fuzz_hex4(&p[i + 8]) : -1;

                if (lo < 0xdc00 || lo > 0xdfff) {
                    return i;
                }

                i += 12;
                continue;
            }

            i += 6;
            continue;
        }

        if (!in_string && (p[i] == '\v' || p[i] == '\f')) {
            return i;
        }

        if (p[i] < 0x80) {
            i++;
            continue;
        }

        n = fuzz_utf8(&p[i], len - i);

        if (n == 0) {
            return i;
        }

        i += n;
    }

    return (size_t) -1;
}


/*
 * Past the value of a document yajl accepted.  yajl lets an unterminated
 * string after it pass (its lexer waits for the rest of the token, even
 * at the end), which the validator refuses as trailing garbage.
 */

#define fuzz_yajl_ws(c)                                                     \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r'              \
     || (c) == '\v' || (c) == '\f')

static size_t
fuzz_ref_end(const u_char *p, size_t len)
{
    size_t      i;
    ngx_uint_t  depth, in_string, escaped;

    depth = in_string = escaped = 0;

    for (i = 0; i < len && fuzz_yajl_ws(p[i]); i++) { /* void */ }

    for ( /* void */ ; i < len; i++) {

        if (in_string) {
            if (escaped) {
                escaped = 0;

            } else if (p[i] == '\\') {
                escaped = 1;

            } else if (p[i] == '"') {
                in_string = 0;

                if (depth == 0) {
                    return i + 1;
                }
            }

            continue;
        }

        switch (p[i]) {
        case '"':
            in_string = 1;
            break;
        case '[':
        case '{':
            depth++;
            break;
        case ']':
        case '}':
            if (--depth == 0) {
                return i + 1;
            }
            break;
        default:
            if (depth == 0) {
                /* a number or a literal */
                while (i < len && !fuzz_yajl_ws(p[i]) && p[i] != '"') {
                    i++;
                }

                return i;
            }
        }
    }

    return len;
}


/*
 * The deepest nesting of a document yajl parsed, strings skipped, up to
 * the first bracket past NGX_OMNIBUS_JSON_DEPTH, whose offset goes to
 * *deep (-1 if none).
 */

static ngx_uint_t
fuzz_depth(const u_char *p, size_t len, size_t *deep)
{
    size_t      i;
    ngx_uint_t  depth, max, in_string, escaped;

    depth = max = in_string = escaped = 0;
    *deep = (size_t) -1;

    for (i = 0; i < len; i++) {

        if (in_string) {
            if (escaped) {
                escaped = 0;

            } else if (p[i] == '\\') {
                escaped = 1;

            } else if (p[i] == '"') {
                in_string = 0;
            }

            continue;
        }

        switch (p[i]) {
        case '"':
            in_string = 1;
            break;
        case '[':
        case '{':
            if (++depth > max) {
                max = depth;
            }

            if (depth > NGX_OMNIBUS_JSON_DEPTH) {
                *deep = i;
                return max;
            }

            break;
        case ']':
        case '}':
            depth--;
            break;
        }
    }

    return max;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char     *body, *buf, *e, *q, expect[96];
    size_t      bad, deep, at, i, n, len;
    ngx_int_t   rc, ref;
    ngx_str_t   err;

    fuzz_init();

    body = fuzz_dup(data, size, 0);
    buf = fuzz_dup((u_char *) "", FUZZ_ERR_LEN, 0);

    err.data = buf;
    err.len = FUZZ_ERR_LEN;

    rc = ngx_omnibus_json_valid(body, size, &err);

    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    ref = fuzz_ref_valid(body, size);

    if (ref == NGX_OK) {
        for (i = fuzz_ref_end(body, size); i < size; i++) {
            if (!fuzz_yajl_ws(body[i])) {
                ref = NGX_DECLINED;
                break;
            }
        }
    }

    bad = (ref == NGX_OK) ? fuzz_ref_strict(body, size) : (size_t) -1;

    if (ref == 2) {
        /* the part before the bracket too many is as yajl accepts */
        fuzz_assert(fuzz_depth(body, size, &deep) > NGX_OMNIBUS_JSON_DEPTH
                    && deep != (size_t) -1);
        bad = fuzz_ref_strict(body, deep);
    }

    if (rc == NGX_OK) {
        fuzz_assert(ref == NGX_OK && bad == (size_t) -1);
        fuzz_assert(fuzz_depth(body, size, &deep) <= NGX_OMNIBUS_JSON_DEPTH);

    } else {
        fuzz_assert(ref != NGX_OK || bad != (size_t) -1);
        fuzz_assert(err.data == buf && err.len <= FUZZ_ERR_LEN);
        fuzz_assert(err.len > 0 && err.data[err.len - 1] != '\n');

        if (ref == 2 && bad == (size_t) -1) {
            e = ngx_sprintf(expect, "JSON nesting is deeper than %d levels "
                            "(at byte %uz)", NGX_OMNIBUS_JSON_DEPTH,
                            deep + 1);
            fuzz_assert(err.len == (size_t) (e - expect)
                        && ngx_strncmp(err.data, expect, e - expect) == 0);

        } else if (bad != (size_t) -1) {
            e = ngx_sprintf(expect, "body is not valid JSON (near byte %uz): ",
                            bad);
            fuzz_assert(err.len > (size_t) (e - expect)
                        && ngx_strncmp(err.data, expect, e - expect) == 0);

        } else {
            e = (u_char *) "body is not valid JSON (near byte ";
            n = ngx_strlen(e);
            fuzz_assert(err.len > n && ngx_strncmp(err.data, e, n) == 0);

            /* a byte of the body, or its end */
            for (at = 0, i = n; i < err.len && err.data[i] != ')'; i++) {
                fuzz_assert(err.data[i] >= '0' && err.data[i] <= '9');
                at = at * 10 + err.data[i] - '0';
            }

            fuzz_assert(i > n && i + 3 < err.len && at <= size);
        }
    }

    /* the same answer twice: nothing of a parse leaks into the next */
    err.len = FUZZ_ERR_LEN;
    fuzz_assert(ngx_omnibus_json_valid(body, size, &err) == rc);

    /* the input as a string in the JSON the module writes */

    len = ngx_omnibus_json_escaped_len(body, size);
    fuzz_assert(len >= size && len <= 6 * size);

    q = fuzz_dup((u_char *) "", len + 2, 0);
    q[0] = '"';
    e = ngx_omnibus_json_escape(q + 1, body, size);
    fuzz_assert(e == q + 1 + len);
    *e = '"';

    for (i = 0; i < size; i += n) {
        n = fuzz_utf8(&body[i], size - i);
        if (n == 0) {
            break;
        }
    }

    err.len = FUZZ_ERR_LEN;
    rc = ngx_omnibus_json_valid(q, len + 2, &err);
    fuzz_assert((rc == NGX_OK) == (i >= size));

    free(q);

    free(buf);
    free(body);

    return 0;
}
