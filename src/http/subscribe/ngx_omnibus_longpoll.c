
/*
 * Long-poll: answer at once with what was retained past ?after= or
 * Last-Event-ID, else wait up to ?timeout= seconds for the first news
 * and answer with it, else 204.  One JSON reply per request:
 * {"messages":[{"id","topic","priority","payload"}],"last_id":"..."}.
 */


#include <ngx_omnibus_subscribe.h>


/* messages in one reply at most; the rest with the next ?after= */
#define NGX_OMNIBUS_POLL_LIMIT    1000


static void ngx_omnibus_longpoll_timeout(ngx_event_t *ev);


ngx_int_t
ngx_omnibus_longpoll_start(ngx_omnibus_sub_t *sub, ngx_array_t *copies,
    ngx_msec_t timeout)
{
    ngx_http_request_t  *r;

    if (copies->nelts) {
        return ngx_omnibus_longpoll_reply(sub, copies->elts, copies->nelts);
    }

    r = sub->r;

    sub->timer.handler = ngx_omnibus_longpoll_timeout;
    ngx_add_timer(&sub->timer, timeout);

    r->main->count++;
    r->read_event_handler = ngx_http_test_reading;

    return NGX_DONE;
}


/* news: the reply copies what it needs, the caller's pool may go */

ngx_int_t
ngx_omnibus_longpoll_reply(ngx_omnibus_sub_t *sub, ngx_omnibus_copy_t *c,
    ngx_uint_t n)
{
    ngx_uint_t          i;
    ngx_omnibus_out_t   out;

    n = ngx_min(n, NGX_OMNIBUS_POLL_LIMIT);

    ngx_omnibus_sub_unregister(sub);

    if (sub->timer.timer_set) {
        ngx_del_timer(&sub->timer);
    }

    ngx_omnibus_out_init(&out, sub->r);
    ngx_omnibus_out_printf(&out, "{\"messages\":[");

    for (i = 0; i < n; i++) {
        ngx_omnibus_out_printf(&out, "%s{\"id\":\"%*s\",\"topic\":",
                               i ? "," : "", (size_t) NGX_OMNIBUS_ID_LEN,
                               c[i].id);
        ngx_omnibus_out_json_str(&out, c[i].topic.data, c[i].topic.len);
        ngx_omnibus_out_printf(&out, ",\"priority\":%ui,\"payload\":",
                               c[i].priority);
        ngx_omnibus_out_payload(&out, &c[i].payload, c[i].json);
        ngx_omnibus_out_printf(&out, "}");
    }

    ngx_omnibus_out_printf(&out, "],\"last_id\":\"%*s\"}\n",
                           (size_t) NGX_OMNIBUS_ID_LEN, c[n - 1].id);

    return ngx_omnibus_out_send(&out, NGX_HTTP_OK, "application/json");
}


static void
ngx_omnibus_longpoll_timeout(ngx_event_t *ev)
{
    ngx_omnibus_sub_t   *sub;
    ngx_http_request_t  *r;

    sub = ev->data;
    r = sub->r;

    ngx_omnibus_sub_unregister(sub);

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->header_only = 1;
    r->headers_out.content_length_n = 0;

    ngx_omnibus_sub_finalize(r, ngx_http_send_header(r));
}
