
/*
 * Responses: a small writer that appends formatted text to a chain of
 * request-pool buffers, and the JSON error body every endpoint shares.
 */


#include <ngx_omnibus_http.h>


#define NGX_OMNIBUS_OUT_CHUNK  4096


static void ngx_omnibus_out_raw(ngx_omnibus_out_t *out, u_char *p,
    size_t len);


void
ngx_omnibus_out_init(ngx_omnibus_out_t *out, ngx_http_request_t *r)
{
    out->r = r;
    out->first = NULL;
    out->last = NULL;
    out->len = 0;
    out->error = 0;
}


static ngx_buf_t *
ngx_omnibus_out_room(ngx_omnibus_out_t *out, size_t size)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (out->last && (size_t) (out->last->buf->end - out->last->buf->last)
                     >= size)
    {
        return out->last->buf;
    }

    b = ngx_create_temp_buf(out->r->pool,
                            ngx_max(size, NGX_OMNIBUS_OUT_CHUNK));
    if (b == NULL) {
        out->error = 1;
        return NULL;
    }

    cl = ngx_alloc_chain_link(out->r->pool);
    if (cl == NULL) {
        out->error = 1;
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;

    if (out->last) {
        out->last->next = cl;

    } else {
        out->first = cl;
    }

    out->last = cl;

    return b;
}


void
ngx_omnibus_out_printf(ngx_omnibus_out_t *out, const char *fmt, ...)
{
    u_char     *p;
    size_t      room;
    va_list     args;
    ngx_buf_t  *b;

    /* lines written here are short; 512 bytes is always enough */

    b = ngx_omnibus_out_room(out, 512);
    if (b == NULL) {
        return;
    }

    room = b->end - b->last;

    va_start(args, fmt);
    p = ngx_vslprintf(b->last, b->end, fmt, args);
    va_end(args);

    if ((size_t) (p - b->last) >= room) {
        out->error = 1;
    }

    out->len += p - b->last;
    b->last = p;
}


void
ngx_omnibus_out_json_str(ngx_omnibus_out_t *out, u_char *p, size_t len)
{
    size_t      size;
    ngx_buf_t  *b;

    size = ngx_omnibus_json_escaped_len(p, len) + 2;

    b = ngx_omnibus_out_room(out, size);
    if (b == NULL) {
        return;
    }

    *b->last++ = '"';
    b->last = ngx_omnibus_json_escape(b->last, p, len);
    *b->last++ = '"';

    out->len += size;
}


static void
ngx_omnibus_out_raw(ngx_omnibus_out_t *out, u_char *p, size_t len)
{
    ngx_buf_t  *b;

    b = ngx_omnibus_out_room(out, len);
    if (b == NULL) {
        return;
    }

    b->last = ngx_cpymem(b->last, p, len);
    out->len += len;
}


/* a message's payload: JSON stays JSON, anything else becomes a string */

void
ngx_omnibus_out_payload(ngx_omnibus_out_t *out, ngx_str_t *payload,
    ngx_uint_t json)
{
    if (json) {
        ngx_omnibus_out_raw(out, payload->data, payload->len);

    } else {
        ngx_omnibus_out_json_str(out, payload->data, payload->len);
    }
}


ngx_int_t
ngx_omnibus_out_send(ngx_omnibus_out_t *out, ngx_uint_t status,
    const char *ctype)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = out->r;

    if (out->error) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = out->len;
    r->headers_out.content_type.data = (u_char *) ctype;
    r->headers_out.content_type.len = ngx_strlen(ctype);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (out->len == 0 || r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out->last->buf->last_buf = (r == r->main) ? 1 : 0;
    out->last->buf->last_in_chain = 1;

    return ngx_http_output_filter(r, out->first);
}


ngx_int_t
ngx_omnibus_reply_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message, time_t retry_after)
{
    ngx_table_elt_t    *h;
    ngx_omnibus_out_t   out;

    if (retry_after) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");

        h->value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (h->value.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->value.len = ngx_sprintf(h->value.data, "%T", retry_after)
                       - h->value.data;
    }

    ngx_omnibus_out_init(&out, r);
    ngx_omnibus_out_printf(&out, "{\"error\":\"%s\",\"message\":", code);
    ngx_omnibus_out_json_str(&out, (u_char *) message,
                             ngx_strlen(message));
    ngx_omnibus_out_printf(&out, "}\n");

    return ngx_omnibus_out_send(&out, status, "application/json");
}


/*
 * The body of a request answered without reading it is discarded, so
 * that the connection stays reusable.  A malformed one (a bad chunk)
 * cannot be skipped: the answer is a JSON 400 on a connection that
 * closes.  NGX_OK: go on; else the request is answered, return *rc.
 */

ngx_int_t
ngx_omnibus_discard_body(ngx_http_request_t *r, ngx_int_t *rc)
{
    *rc = ngx_http_discard_request_body(r);

    if (*rc == NGX_OK) {
        return NGX_OK;
    }

    if (*rc == NGX_HTTP_BAD_REQUEST) {
        r->keepalive = 0;
        *rc = ngx_omnibus_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                      "invalid_body",
                                      "the request body is malformed", 0);
    }

    return NGX_DONE;
}


/* a resource read with GET or HEAD: NGX_OK, or answered, return *rc */

ngx_int_t
ngx_omnibus_read_only(ngx_http_request_t *r, ngx_int_t *rc)
{
    if (ngx_omnibus_discard_body(r, rc) != NGX_OK) {
        return NGX_DONE;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        *rc = ngx_omnibus_reply_not_allowed(r, "GET, HEAD");
        return NGX_DONE;
    }

    return NGX_OK;
}


/* 405 with the methods the resource takes; the body has been discarded */

ngx_int_t
ngx_omnibus_reply_not_allowed(ngx_http_request_t *r, char *allow)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = (u_char *) allow;
    h->value.len = ngx_strlen(allow);

    return ngx_omnibus_reply_error(r, NGX_HTTP_NOT_ALLOWED,
                                   "method_not_allowed",
                                   "this resource does not take that method",
                                   0);
}
