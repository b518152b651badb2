
/*
 * Server-sent events: one event per message (id: the message id, event:
 * its topic, data: its payload, a data: line per payload line), comment
 * heartbeats, and a stream that lasts until the client or the worker
 * goes.
 */


#include <ngx_omnibus_subscribe.h>


static size_t ngx_omnibus_sse_event_size(ngx_omnibus_copy_t *c);
static u_char *ngx_omnibus_sse_event(u_char *p, ngx_omnibus_copy_t *c);
static void ngx_omnibus_sse_heartbeat(ngx_event_t *ev);


/* headers now, then what was retained past Last-Event-ID, then news */

ngx_int_t
ngx_omnibus_sse_start(ngx_omnibus_sub_t *sub, ngx_array_t *copies)
{
    ngx_int_t                 rc;
    ngx_uint_t                i;
    ngx_table_elt_t          *h;
    ngx_http_request_t       *r;
    ngx_omnibus_sub_batch_t  *batch;

    r = sub->r;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = -1;
    ngx_str_set(&r->headers_out.content_type, "text/event-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-cache");

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Accel-Buffering");
    ngx_str_set(&h->value, "no");

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    if (ngx_omnibus_sub_append(sub, (u_char *) ": omnibus\n\n", 11)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (copies->nelts) {
        batch = ngx_omnibus_sse_render(copies->elts, copies->nelts,
                                       r->connection->log);
        if (batch == NULL) {
            return NGX_ERROR;
        }

        rc = NGX_OK;

        for (i = 0; i < batch->n; i++) {
            if (ngx_omnibus_sub_share(sub, batch, i) != NGX_OK) {
                rc = NGX_ERROR;
                break;
            }
        }

        ngx_omnibus_sub_release(batch);

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_omnibus_sub_flush(sub) != NGX_OK) {
        return NGX_ERROR;
    }

    sub->timer.handler = ngx_omnibus_sse_heartbeat;
    ngx_add_timer(&sub->timer, sub->heartbeat);

    r->main->count++;
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_omnibus_sub_write_handler;

    return NGX_DONE;
}


/* news from the fan-out: those of the round matching our pattern */

void
ngx_omnibus_sse_feed(ngx_omnibus_sub_t *sub, ngx_omnibus_sub_batch_t *batch,
    u_char *match)
{
    ngx_uint_t  i;

    for (i = 0; i < batch->n; i++) {
        if (match[i] && ngx_omnibus_sub_share(sub, batch, i) != NGX_OK) {
            ngx_omnibus_sub_finalize(sub->r, NGX_ERROR);
            return;
        }
    }

    if (sub->out && ngx_omnibus_sub_flush(sub) != NGX_OK) {
        ngx_omnibus_sub_finalize(sub->r, NGX_ERROR);
    }
}


/* the events, once: the streams share them (one reference, the caller's) */

ngx_omnibus_sub_batch_t *
ngx_omnibus_sse_render(ngx_omnibus_copy_t *c, ngx_uint_t n, ngx_log_t *log)
{
    u_char                   *p;
    size_t                    size;
    ngx_uint_t                i;
    ngx_omnibus_sub_batch_t  *batch;

    size = offsetof(ngx_omnibus_sub_batch_t, off) + (n + 1) * sizeof(size_t);

    for (i = 0; i < n; i++) {
        size += ngx_omnibus_sse_event_size(&c[i]);
    }

    batch = ngx_alloc(size, log);
    if (batch == NULL) {
        return NULL;
    }

    batch->refs = 1;
    batch->n = n;
    batch->data = (u_char *) &batch->off[n + 1];

    p = batch->data;

    for (i = 0; i < n; i++) {
        batch->off[i] = p - batch->data;
        p = ngx_omnibus_sse_event(p, &c[i]);
    }

    batch->off[n] = p - batch->data;

    return batch;
}


/* id:, event:, a data: line per payload line, and the blank line */

static size_t
ngx_omnibus_sse_event_size(ngx_omnibus_copy_t *c)
{
    u_char  *p, *end, *eol;
    size_t   size;

    size = sizeof("id: \nevent: \n") - 1 + NGX_OMNIBUS_ID_LEN + c->topic.len
           + 1;

    p = c->payload.data;
    end = p + c->payload.len;

    do {
        for (eol = p; eol < end && *eol != '\n' && *eol != '\r'; eol++) {
            /* void */
        }

        size += sizeof("data: \n") - 1 + (eol - p);

        if (eol < end && *eol == '\r' && eol + 1 < end && eol[1] == '\n') {
            eol++;
        }

        p = eol + 1;

    } while (p < end);

    return size;
}


static u_char *
ngx_omnibus_sse_event(u_char *b, ngx_omnibus_copy_t *c)
{
    u_char  *p, *end, *eol;

    b = ngx_cpymem(b, "id: ", 4);
    b = ngx_cpymem(b, c->id, NGX_OMNIBUS_ID_LEN);
    b = ngx_cpymem(b, "\nevent: ", 8);
    b = ngx_cpymem(b, c->topic.data, c->topic.len);
    *b++ = '\n';

    /* every line of the payload is a data: line */

    p = c->payload.data;
    end = p + c->payload.len;

    do {
        for (eol = p; eol < end && *eol != '\n' && *eol != '\r'; eol++) {
            /* void */
        }

        b = ngx_cpymem(b, "data: ", 6);
        b = ngx_cpymem(b, p, eol - p);
        *b++ = '\n';

        if (eol < end && *eol == '\r' && eol + 1 < end && eol[1] == '\n') {
            eol++;
        }

        p = eol + 1;

    } while (p < end);

    *b++ = '\n';

    return b;
}


static void
ngx_omnibus_sse_heartbeat(ngx_event_t *ev)
{
    ngx_omnibus_sub_t  *sub;

    sub = ev->data;

    if (ngx_omnibus_sub_append(sub, (u_char *) ":\n\n", 3) != NGX_OK
        || ngx_omnibus_sub_flush(sub) != NGX_OK)
    {
        ngx_omnibus_sub_finalize(sub->r, NGX_ERROR);
        return;
    }

    ngx_add_timer(ev, sub->heartbeat);
}
