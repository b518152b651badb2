
/*
 * JSON: strict validation of message bodies with yajl's stream parser
 * (no comments, no trailing garbage, UTF-8 checked, bounded depth), and
 * string escaping for the JSON this module writes.
 */


#include "ngx_omnibus.h"

#include <yajl/yajl_parse.h>


typedef struct {
    ngx_uint_t  depth;
    ngx_uint_t  too_deep;
} ngx_omnibus_json_ctx_t;


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

    h = yajl_alloc(&ngx_omnibus_json_callbacks, NULL, &ctx);
    if (h == NULL) {
        return NGX_ERROR;
    }

    st = yajl_parse(h, p, len);

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    if (st == yajl_status_ok) {
        yajl_free(h);
        return NGX_OK;
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
