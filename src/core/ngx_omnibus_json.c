
/*
 * JSON: strict validation of message bodies (RFC 8259's grammar, UTF-8
 * as RFC 3629 has it, escaped surrogates in pairs, bounded depth); NDJSON
 * lines; and string escaping for the JSON this module writes.
 *
 * The validator is a state machine over tokens: a table maps what the
 * grammar allows next and the class of the next byte to an action, and
 * the actions scan whole strings, numbers and literals.  The commonest
 * successions (a value, then a comma and the next key or a closing
 * bracket) are taken without a turn through the table.  The plain bytes
 * of strings go sixteen at a time (SSE2, in every x86-64) or eight; open
 * containers are kept on a stack of NGX_OMNIBUS_JSON_DEPTH bytes.  It
 * allocates nothing and needs no more of NGINX than its types and
 * ngx_snprintf(), so bench/jsonbench.sh builds it alone.
 */


#include <ngx_omnibus_core.h>

#if (__SSE2__)
#include <emmintrin.h>
#endif


/* the classes of bytes outside strings */

#define NGX_OMNIBUS_JSON_C_BAD     0
#define NGX_OMNIBUS_JSON_C_WS      1
#define NGX_OMNIBUS_JSON_C_QUOTE   2
#define NGX_OMNIBUS_JSON_C_NUMBER  3        /* '-' and the digits */
#define NGX_OMNIBUS_JSON_C_LBRACE  4
#define NGX_OMNIBUS_JSON_C_RBRACE  5
#define NGX_OMNIBUS_JSON_C_LBRACK  6
#define NGX_OMNIBUS_JSON_C_RBRACK  7
#define NGX_OMNIBUS_JSON_C_COMMA   8
#define NGX_OMNIBUS_JSON_C_COLON   9
#define NGX_OMNIBUS_JSON_C_T       10
#define NGX_OMNIBUS_JSON_C_F       11
#define NGX_OMNIBUS_JSON_C_N       12
#define NGX_OMNIBUS_JSON_CLASSES   16       /* 13, rounded up */


static const u_char  ngx_omnibus_json_class[256] = {
    /* whitespace is "\t\n\r " only: RFC 8259 has no \v or \f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0,       /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,       /* 0x10 */
    1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 3, 0, 0,       /*  !"#$%&'()*+,-./ */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 9, 0, 0, 0, 0, 0,       /* 0123456789:;<=>? */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,       /* @ABCDEFGHIJKLMNO */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 7, 0, 0,       /* PQRSTUVWXYZ[\]^_ */
    0, 0, 0, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 12, 0,     /* `abcdefghijklmno */
    0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 4, 0, 5, 0, 0,      /* pqrstuvwxyz{|}~  */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,       /* 0x80: UTF-8 is */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,       /* only in strings */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
};


/* the states: what the grammar allows next */

enum {
    sw_value = 0,               /* a value */
    sw_array_first,             /* a value or ']' */
    sw_object_first,            /* a key or '}' */
    sw_key,                     /* a key, after ',' */
    sw_object_next,             /* ',' or '}' */
    sw_array_next,              /* ',' or ']' */
    sw_done                     /* whitespace only */
};


/* the actions */

enum {
    ac_bad = 0,
    ac_ws,
    ac_string,
    ac_number,
    ac_true,
    ac_false,
    ac_null,
    ac_object,
    ac_array,
    ac_key,                     /* a key, its ':' */
    ac_end_object,
    ac_end_array,
    ac_next_key,                /* ',' in an object */
    ac_next_value,              /* ',' in an array */
    ac_garbage
};


static const u_char
    ngx_omnibus_json_action[][NGX_OMNIBUS_JSON_CLASSES] =
{
    /*   other    ws     '"'        '-' 0-9    '{'        '}'
     *   '['      ']'    ','        ':'        t          f          n */

    /* sw_value */
    { ac_bad, ac_ws, ac_string, ac_number, ac_object, ac_bad,
      ac_array, ac_bad, ac_bad, ac_bad, ac_true, ac_false, ac_null },

    /* sw_array_first */
    { ac_bad, ac_ws, ac_string, ac_number, ac_object, ac_bad,
      ac_array, ac_end_array, ac_bad, ac_bad, ac_true, ac_false, ac_null },

    /* sw_object_first */
    { ac_bad, ac_ws, ac_key, ac_bad, ac_bad, ac_end_object,
      ac_bad, ac_bad, ac_bad, ac_bad, ac_bad, ac_bad, ac_bad },

    /* sw_key */
    { ac_bad, ac_ws, ac_key, ac_bad, ac_bad, ac_bad,
      ac_bad, ac_bad, ac_bad, ac_bad, ac_bad, ac_bad, ac_bad },

    /* sw_object_next */
    { ac_bad, ac_ws, ac_bad, ac_bad, ac_bad, ac_end_object,
      ac_bad, ac_bad, ac_next_key, ac_bad, ac_bad, ac_bad, ac_bad },

    /* sw_array_next */
    { ac_bad, ac_ws, ac_bad, ac_bad, ac_bad, ac_bad,
      ac_bad, ac_end_array, ac_next_value, ac_bad, ac_bad, ac_bad, ac_bad },

    /* sw_done */
    { ac_garbage, ac_ws, ac_garbage, ac_garbage, ac_garbage, ac_garbage,
      ac_garbage, ac_garbage, ac_garbage, ac_garbage, ac_garbage,
      ac_garbage, ac_garbage }
};


#define ngx_omnibus_json_ws(c)                                               \
    (ngx_omnibus_json_class[c] == NGX_OMNIBUS_JSON_C_WS)

#define ngx_omnibus_json_digit(c)  ((u_char) ((c) - '0') < 10)

/* some byte of v is c */
#define ngx_omnibus_json_has(v, c)                                           \
    ((((v) ^ (0x0101010101010101ULL * (c))) - 0x0101010101010101ULL)       \
     & ~((v) ^ (0x0101010101010101ULL * (c))) & 0x8080808080808080ULL)

/* some byte of v is below 0x20 or from 0x80 on */
#define ngx_omnibus_json_ctl8(v)                                             \
    ((((v) - 0x2020202020202020ULL) | (v)) & 0x8080808080808080ULL)


static const char *ngx_omnibus_json_string(u_char **pp, u_char *last);
static ngx_int_t ngx_omnibus_json_hex4(u_char *p, u_char *last);
static size_t ngx_omnibus_json_utf8(u_char *p, u_char *last);
static const char *ngx_omnibus_json_literal(u_char **pp, u_char *last,
    const char *word, size_t n);


/* NGX_OK, or NGX_DECLINED with a reason in err */

ngx_int_t
ngx_omnibus_json_valid(u_char *p, size_t len, ngx_str_t *err)
{
    u_char      *start, *last;
    ngx_uint_t   state, after, depth;
    const char  *why;
    u_char       stack[NGX_OMNIBUS_JSON_DEPTH];

    start = p;
    last = p + len;

    state = sw_value;
    after = sw_done;            /* the state once the current value ends */
    depth = 0;

    for ( ;; ) {

        if (p == last) {
            if (state == sw_done) {
                return NGX_OK;
            }

            why = "premature end";
            goto invalid;
        }

        switch (ngx_omnibus_json_action[state]
                                       [ngx_omnibus_json_class[*p]])
        {

        case ac_ws:
            do {
                p++;
            } while (p < last && ngx_omnibus_json_ws(*p));

            continue;

        case ac_next_key:
            p++;
            state = sw_key;

            /* most often the key's quote follows the comma */

            if (p == last || *p != '"') {
                continue;
            }

            /* fall through */

        case ac_key:
        case ac_string:
            p++;

        string:

            why = ngx_omnibus_json_string(&p, last);
            if (why) {
                goto invalid;
            }

            if (state != sw_key && state != sw_object_first) {
                break;
            }

            /* a key: its colon, most often at once */

            if (p < last && *p == ':') {
                p++;
                state = sw_value;
                continue;
            }

            while (p < last && ngx_omnibus_json_ws(*p)) {
                p++;
            }

            if (p == last) {
                why = "premature end";
                goto invalid;
            }

            if (*p != ':') {
                why = "unexpected character";
                goto invalid;
            }

            p++;
            state = sw_value;
            continue;

        case ac_number:

            /* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */

            if (*p == '-' && ++p == last) {
                why = "premature end";
                goto invalid;
            }

            if (*p == '0') {
                p++;

            } else if (ngx_omnibus_json_digit(*p)) {
                do {
                    p++;
                } while (p < last && ngx_omnibus_json_digit(*p));

            } else {
                why = "invalid number";
                goto invalid;
            }

            if (p < last && *p == '.') {
                if (++p == last) {
                    why = "premature end";
                    goto invalid;
                }

                if (!ngx_omnibus_json_digit(*p)) {
                    why = "invalid number";
                    goto invalid;
                }

                do {
                    p++;
                } while (p < last && ngx_omnibus_json_digit(*p));
            }

            if (p < last && (*p == 'e' || *p == 'E')) {
                if (++p < last && (*p == '+' || *p == '-')) {
                    p++;
                }

                if (p == last) {
                    why = "premature end";
                    goto invalid;
                }

                if (!ngx_omnibus_json_digit(*p)) {
                    why = "invalid number";
                    goto invalid;
                }

                do {
                    p++;
                } while (p < last && ngx_omnibus_json_digit(*p));
            }

            break;

        case ac_true:
            why = ngx_omnibus_json_literal(&p, last, "true", 4);
            if (why) {
                goto invalid;
            }

            break;

        case ac_false:
            why = ngx_omnibus_json_literal(&p, last, "false", 5);
            if (why) {
                goto invalid;
            }

            break;

        case ac_null:
            why = ngx_omnibus_json_literal(&p, last, "null", 4);
            if (why) {
                goto invalid;
            }

            break;

        case ac_object:
        case ac_array:
            if (depth == NGX_OMNIBUS_JSON_DEPTH) {
                goto too_deep;
            }

            stack[depth++] = (u_char) after;

            if (*p++ == '{') {
                state = sw_object_first;
                after = sw_object_next;

                /* the first key, without a dispatch */

                if (p < last && *p == '"') {
                    p++;
                    goto string;
                }

            } else {
                state = sw_array_first;
                after = sw_array_next;
            }

            continue;

        case ac_end_object:
        case ac_end_array:
            p++;
            after = stack[--depth];
            break;

        case ac_next_value:
            p++;
            state = sw_value;
            continue;

        case ac_garbage:
            why = "trailing garbage";
            goto invalid;

        default: /* ac_bad */
            why = "unexpected character";
            goto invalid;
        }

        /*
         * A value ended.  In a container a comma most often follows (in
         * an object, with the next key's quote) or the closing bracket:
         * the table would allow them too, this saves a dispatch each.
         */

        state = after;

        while (p < last) {

            if (*p == ',') {
                if (after == sw_array_next) {
                    p++;
                    state = sw_value;

                } else if (after == sw_object_next
                           && last - p > 1 && p[1] == '"')
                {
                    p += 2;
                    state = sw_key;
                    goto string;
                }

            } else if ((*p == '}' && after == sw_object_next)
                       || (*p == ']' && after == sw_array_next))
            {
                p++;
                after = stack[--depth];
                state = after;
                continue;
            }

            break;
        }
    }

invalid:

    err->len = ngx_snprintf(err->data, err->len, "body is not valid JSON "
                            "(near byte %uz): %s", (size_t) (p - start), why)
               - err->data;

    return NGX_DECLINED;

too_deep:

    /* the byte past the bracket, as yajl counted */

    err->len = ngx_snprintf(err->data, err->len, "JSON nesting is "
                            "deeper than %d levels (at byte %uz)",
                            NGX_OMNIBUS_JSON_DEPTH, (size_t) (p + 1 - start))
               - err->data;

    return NGX_DECLINED;
}


/*
 * A string from past its opening quote: NULL and *pp past its closing
 * quote, or the reason and *pp at what is wrong (at the opening quote if
 * the string does not end).
 */

static ngx_inline const char *
ngx_omnibus_json_string(u_char **pp, u_char *last)
{
    u_char     *p, c;
    size_t      n;
    ngx_int_t   cp, low;
#if (__SSE2__)
    int         m;
    __m128i     x, quote, backslash, space;

    quote = _mm_set1_epi8('"');
    backslash = _mm_set1_epi8('\\');
    space = _mm_set1_epi8(0x20);
#else
    uint64_t    v;
#endif

    p = *pp;

    for ( ;; ) {

#if (__SSE2__)
        while (last - p >= 16) {
            x = _mm_loadu_si128((const __m128i *) p);

            /* signed: the bytes below 0x20 and from 0x80 on are less */

            m = _mm_movemask_epi8(
                    _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote),
                                              _mm_cmpeq_epi8(x, backslash)),
                                 _mm_cmpgt_epi8(space, x)));
            if (m) {
                p += __builtin_ctz(m);
                goto special;
            }

            p += 16;
        }
#else
        while (last - p >= 8) {
            ngx_memcpy(&v, p, 8);

            if (ngx_omnibus_json_ctl8(v)
                || ngx_omnibus_json_has(v, '"')
                || ngx_omnibus_json_has(v, '\\'))
            {
                break;
            }

            p += 8;
        }
#endif

        while (p < last && *p >= 0x20 && *p < 0x80 && *p != '"'
               && *p != '\\')
        {
            p++;
        }

        if (p == last) {
            goto unterminated;
        }

#if (__SSE2__)
    special:
#endif

        c = *p;

        if (c == '"') {
            *pp = p + 1;
            return NULL;
        }

        if (c == '\\') {
            if (last - p < 2) {
                goto unterminated;
            }

            switch (p[1]) {

            case '"': case '\\': case '/':
            case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                continue;

            case 'u':
                break;

            default:
                *pp = p;
                return "invalid escape";
            }

            cp = ngx_omnibus_json_hex4(p + 2, last);

            if (cp < 0) {
                *pp = p;
                return "invalid escape";
            }

            if (cp >= 0xdc00 && cp <= 0xdfff) {
                *pp = p;
                return "a low surrogate escape without its high half";
            }

            if (cp >= 0xd800 && cp <= 0xdbff) {
                low = (last - p >= 12 && p[6] == '\\' && p[7] == 'u')
                      ? ngx_omnibus_json_hex4(p + 8, last) : -1;

                if (low < 0xdc00 || low > 0xdfff) {
                    *pp = p;
                    return "a high surrogate escape without its low half";
                }

                p += 12;
                continue;
            }

            p += 6;
            continue;
        }

        if (c < 0x20) {
            *pp = p;
            return "control character in string";
        }

        n = ngx_omnibus_json_utf8(p, last);

        if (n == 0) {
            *pp = p;
            return "invalid UTF-8";
        }

        p += n;
    }

unterminated:

    *pp -= 1;
    return "unterminated string";
}


/* the four hex digits at p, or -1 */

static ngx_int_t
ngx_omnibus_json_hex4(u_char *p, u_char *last)
{
    u_char      c;
    ngx_int_t   v;
    ngx_uint_t  i;

    if (last - p < 4) {
        return -1;
    }

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            v = v * 16 + c - '0';
            continue;
        }

        c |= 0x20;

        if (c >= 'a' && c <= 'f') {
            v = v * 16 + c - 'a' + 10;
            continue;
        }

        return -1;
    }

    return v;
}


/*
 * The length of the sequence at p (a byte from 0x80 on) if RFC 3629 has
 * it, or 0: no overlong forms, no surrogates, nothing past U+10FFFF.
 */

static size_t
ngx_omnibus_json_utf8(u_char *p, u_char *last)
{
    u_char  c, lo, hi;
    size_t  n;

    c = p[0];

    if (c < 0xc2) {
        return 0;               /* a continuation, or overlong */
    }

    lo = 0x80;
    hi = 0xbf;

    if (c < 0xe0) {
        n = 2;

    } else if (c < 0xf0) {
        n = 3;

        if (c == 0xe0) {
            lo = 0xa0;          /* overlong */

        } else if (c == 0xed) {
            hi = 0x9f;          /* surrogates */
        }

    } else if (c < 0xf5) {
        n = 4;

        if (c == 0xf0) {
            lo = 0x90;          /* overlong */

        } else if (c == 0xf4) {
            hi = 0x8f;          /* past U+10FFFF */
        }

    } else {
        return 0;
    }

    if ((size_t) (last - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    if (n > 2 && (p[2] & 0xc0) != 0x80) {
        return 0;
    }

    if (n > 3 && (p[3] & 0xc0) != 0x80) {
        return 0;
    }

    return n;
}


/*
 * true, false or null at *pp: NULL and *pp past it, or the reason and
 * *pp at the first byte that differs
 */

static const char *
ngx_omnibus_json_literal(u_char **pp, u_char *last, const char *word,
    size_t n)
{
    u_char  *p;
    size_t   i;

    p = *pp;

    for (i = 1; i < n; i++) {
        if (p + i == last) {
            *pp = last;
            return "premature end";
        }

        if (p[i] != (u_char) word[i]) {
            *pp = p + i;
            return "unexpected character";
        }
    }

    *pp = p + n;

    return NULL;
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
