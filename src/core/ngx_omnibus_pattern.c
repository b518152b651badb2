
/*
 * NATS-style topic patterns: dot-separated tokens where "*" matches one
 * token and a final ">" matches one or more trailing tokens.
 */


#include <ngx_omnibus_core.h>


ngx_int_t
ngx_omnibus_pattern_valid(ngx_str_t *pattern)
{
    u_char      *p, *last, *dot;
    ngx_str_t    token;

    if (pattern->len == 0 || pattern->len > NGX_OMNIBUS_TOPIC_MAX) {
        return NGX_DECLINED;
    }

    p = pattern->data;
    last = p + pattern->len;

    while (p <= last) {
        dot = ngx_strlchr(p, last, '.');
        if (dot == NULL) {
            dot = last;
        }

        token.data = p;
        token.len = dot - p;

        if (token.len == 1 && (p[0] == '*' || p[0] == '>')) {
            if (p[0] == '>' && dot != last) {
                return NGX_DECLINED;
            }

        } else if (ngx_strlchr(p, dot, '*') || ngx_strlchr(p, dot, '>')
                   || ngx_omnibus_topic_valid(&token) != NGX_OK)
        {
            return NGX_DECLINED;
        }

        p = dot + 1;
    }

    return NGX_OK;
}


ngx_int_t
ngx_omnibus_pattern_match(ngx_str_t *pattern, u_char *topic, size_t len)
{
    u_char  *p, *pl, *t, *tl;

    p = pattern->data;
    pl = p + pattern->len;
    t = topic;
    tl = topic + len;

    for ( ;; ) {

        if (p == pl || t == tl) {
            return (p == pl && t == tl);
        }

        if (*p == '>') {
            return 1;                        /* t has at least one token */
        }

        if (*p == '*') {
            p++;

            while (t < tl && *t != '.') {
                t++;
            }

        } else {
            while (p < pl && t < tl && *p != '.' && *p == *t) {
                p++;
                t++;
            }

            if ((p < pl && *p != '.') || (t < tl && *t != '.')) {
                return 0;
            }
        }

        /* both at a dot or at their ends */

        if (p < pl) {
            p++;
            if (t == tl) {
                return 0;
            }
            t++;

        } else if (t < tl) {
            return 0;
        }
    }
}
