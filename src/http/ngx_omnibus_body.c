
/*
 * Publish bodies are collected by a request body filter into one buffer
 * of the request pool, capped at omnibus_max_message_size.  The core never
 * buffers them: no temporary files, and a chunked body past the cap is
 * read and dropped so the JSON 413 can still be sent on a kept-alive
 * connection.  A body that arrives whole in one buffer (read with the
 * headers, or into client_body_buffer_size at once) is not copied: it is
 * validated where it is and copied once, into the zone.
 */


#include <ngx_omnibus_http.h>


static ngx_int_t ngx_omnibus_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_request_body_filter_pt   ngx_http_next_request_body_filter;


ngx_int_t
ngx_omnibus_body_init(ngx_conf_t *cf)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_omnibus_body_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_omnibus_body_append(ngx_http_request_t *r, ngx_omnibus_ctx_t *ctx,
    ngx_omnibus_loc_conf_t *olcf, u_char *p, size_t size)
{
    u_char  *body;
    size_t   want;

    if (size == 0) {
        return NGX_OK;
    }

    if (ctx->len + size > olcf->max_message_size) {
        ctx->too_large = 1;
        return NGX_OK;
    }

    if (ctx->len + size > ctx->size) {

        /* Content-Length sizes the buffer once; chunked bodies double */

        want = ngx_max(ctx->size * 2, 4096);
        want = ngx_max(want, ctx->len + size);
        want = ngx_min(want, olcf->max_message_size);

        body = ngx_pnalloc(r->pool, want);
        if (body == NULL) {
            return NGX_ERROR;
        }

        if (ctx->len) {
            ngx_memcpy(body, ctx->body, ctx->len);
            ngx_pfree(r->pool, ctx->body);
        }

        ctx->body = body;
        ctx->size = want;
    }

    ngx_memcpy(ctx->body + ctx->len, p, size);
    ctx->len += size;

    return NGX_OK;
}


static ngx_int_t
ngx_omnibus_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t               *b;
    ngx_chain_t             *cl, out;
    ngx_omnibus_ctx_t       *ctx;
    ngx_omnibus_loc_conf_t  *olcf;

    /* in other locations our context, if any, is a subscriber's */

    olcf = ngx_http_get_module_loc_conf(r, ngx_omnibus_module);
    ctx = ngx_http_get_module_ctx(r, ngx_omnibus_module);

    if (olcf->publish == NULL || ctx == NULL || !ctx->collecting) {
        return ngx_http_next_request_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        /* the whole body in one buffer that lives as long as the request */

        if (ctx->size == 0 && !b->in_file
            && r->headers_in.content_length_n > 0
            && b->last - b->pos == r->headers_in.content_length_n
            && (size_t) (b->last - b->pos) <= olcf->max_message_size)
        {
            ctx->body = b->pos;
            ctx->len = b->last - b->pos;
            ctx->size = ctx->len;

        } else if (ctx->size == 0 && r->headers_in.content_length_n > 0) {
            ctx->body = ngx_pnalloc(r->pool,
                                    r->headers_in.content_length_n);
            if (ctx->body == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ctx->size = r->headers_in.content_length_n;
        }

        if (!ctx->too_large && ctx->body != b->pos
            && ngx_omnibus_body_append(r, ctx, olcf, b->pos, b->last - b->pos)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->pos = b->last;

        if (b->last_buf) {

            /* only the end of the body reaches the core: nothing to save */

            out.buf = b;
            out.next = NULL;

            return ngx_http_next_request_body_filter(r, &out);
        }
    }

    return NGX_OK;
}
