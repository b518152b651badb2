
/*
 * Server-sent events: one event per message (id: the message id, event:
 * its topic, data: its payload, a data: line per payload line), comment
 * heartbeats, and a stream that lasts until the client or the worker
 * goes.
 */


#include <ngx_omnibus_subscribe.h>


static ngx_int_t ngx_omnibus_sse_event(ngx_omnibus_sub_t *sub,
    ngx_omnibus_copy_t *c);
static void ngx_omnibus_sse_heartbeat(ngx_event_t *ev);


/* headers now, then what was retained past Last-Event-ID, then news */

ngx_int_t
ngx_omnibus_sse_start(ngx_omnibus_sub_t *sub, ngx_array_t *copies)
{
    ngx_int_t            rc;
    ngx_uint_t           i;
    ngx_table_elt_t     *h;
    ngx_http_request_t  *r;
    ngx_omnibus_copy_t  *c;

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

    c = copies->elts;

    for (i = 0; i < copies->nelts; i++) {
        if (ngx_omnibus_sse_event(sub, &c[i]) != NGX_OK) {
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


/* news from the fan-out: those matching our pattern */

void
ngx_omnibus_sse_feed(ngx_omnibus_sub_t *sub, ngx_omnibus_copy_t *c,
    ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        if (ngx_omnibus_pattern_match(&sub->pattern, c[i].topic.data,
                                      c[i].topic.len)
            && ngx_omnibus_sse_event(sub, &c[i]) != NGX_OK)
        {
            break;
        }
    }

    if (sub->out && ngx_omnibus_sub_flush(sub) != NGX_OK) {
        ngx_omnibus_sub_finalize(sub->r, NGX_ERROR);
    }
}


static ngx_int_t
ngx_omnibus_sse_event(ngx_omnibus_sub_t *sub, ngx_omnibus_copy_t *c)
{
    u_char  *p, *end, *eol, head[64 + NGX_OMNIBUS_ID_LEN
                                + NGX_OMNIBUS_TOPIC_MAX];

    p = ngx_sprintf(head, "id: %*s\nevent: %V\n",
                    (size_t) NGX_OMNIBUS_ID_LEN, c->id, &c->topic);

    if (ngx_omnibus_sub_append(sub, head, p - head) != NGX_OK) {
        return NGX_ERROR;
    }

    /* every line of the payload is a data: line */

    p = c->payload.data;
    end = p + c->payload.len;

    do {
        for (eol = p; eol < end && *eol != '\n' && *eol != '\r'; eol++) {
            /* void */
        }

        if (ngx_omnibus_sub_append(sub, (u_char *) "data: ", 6) != NGX_OK
            || ngx_omnibus_sub_append(sub, p, eol - p) != NGX_OK
            || ngx_omnibus_sub_append(sub, (u_char *) "\n", 1) != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (eol < end && *eol == '\r' && eol + 1 < end && eol[1] == '\n') {
            eol++;
        }

        p = eol + 1;

    } while (p < end);

    return ngx_omnibus_sub_append(sub, (u_char *) "\n", 1);
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
