
/*
 * GET <subscribe-location>/<topic-pattern>: an SSE stream when the client
 * accepts text/event-stream, else a long-poll.  Every dispatched message
 * enters its shard's retain ring; the fan-out of each worker reads the
 * rings past its cursors and feeds its subscribers.  Resuming
 * (Last-Event-ID, ?after=) reads the same rings.
 */


#include <ngx_omnibus_subscribe.h>


/* long-poll waits this long unless ?timeout= says otherwise, at most max */
#define NGX_OMNIBUS_POLL_TIMEOUT      30
#define NGX_OMNIBUS_POLL_TIMEOUT_MAX  3600

/* the fan-out copies messages out of the zone into a pool of this size */
#define NGX_OMNIBUS_FANOUT_POOL       16384


static ngx_int_t ngx_omnibus_subscribe_resume(ngx_http_request_t *r,
    ngx_str_t *after);
static void ngx_omnibus_subscribe_fanout(ngx_event_t *ev);


ngx_int_t
ngx_omnibus_subscribe_handler(ngx_http_request_t *r)
{
    u_char                  *p, *last;
    ngx_int_t                rc, timeout;
    ngx_str_t                after, value;
    ngx_array_t              copies;
    ngx_table_elt_t         *h;
    ngx_omnibus_sub_t       *sub;
    ngx_omnibus_loc_conf_t  *olcf;

    if (ngx_omnibus_read_only(r, &rc) != NGX_OK) {
        return rc;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_omnibus_module);

    sub = ngx_pcalloc(r->pool, sizeof(ngx_omnibus_sub_t));
    if (sub == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sub->r = r;
    sub->zone = olcf->subscribe;
    sub->last = &sub->out;
    sub->max_buffer = olcf->max_buffer;
    sub->heartbeat = olcf->heartbeat;

    sub->timer.data = sub;
    sub->timer.log = r->connection->log;
    sub->timer.cancelable = 1;

    /* the pattern is the last path segment */

    last = r->uri.data + r->uri.len;
    for (p = last; p > r->uri.data && p[-1] != '/'; p--) { /* void */ }

    sub->pattern.data = p;
    sub->pattern.len = last - p;

    if (ngx_omnibus_pattern_valid(&sub->pattern) != NGX_OK) {
        return ngx_omnibus_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                       "invalid_topic",
                                       "subscribe to a topic or a pattern "
                                       "with \"*\" and a final \">\"", 0);
    }

    h = r->headers_in.accept;
    sub->sse = (h && ngx_strlcasestrn(h->value.data,
                                      h->value.data + h->value.len,
                                      (u_char *) "text/event-stream",
                                      17 - 1)
                     != NULL);

    timeout = NGX_OMNIBUS_POLL_TIMEOUT;

    if (!sub->sse
        && ngx_http_arg(r, (u_char *) "timeout", 7, &value) == NGX_OK)
    {
        timeout = ngx_atoi(value.data, value.len);

        if (timeout == NGX_ERROR || timeout > NGX_OMNIBUS_POLL_TIMEOUT_MAX) {
            return ngx_omnibus_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                           "invalid_timeout",
                                           "timeout is 0 to 3600 seconds", 0);
        }
    }

    if (ngx_array_init(&copies, r->pool, 16, sizeof(ngx_omnibus_copy_t))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_omnibus_sub_register(sub) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "omnibus subscribe: \"%V\" %s, %ui here",
                   &sub->pattern, sub->sse ? "sse" : "long-poll",
                   sub->zone->nsubscribers);

    if (ngx_omnibus_subscribe_resume(r, &after) == NGX_OK
        && ngx_omnibus_retain_read(sub->zone, r->pool, &copies, &after,
                                   &sub->pattern, NULL)
           != NGX_OK)
    {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto failed;
    }

    if (sub->sse) {
        rc = ngx_omnibus_sse_start(sub, &copies);

    } else {
        rc = ngx_omnibus_longpoll_start(sub, &copies,
                                        (ngx_msec_t) timeout * 1000);
    }

    if (rc == NGX_DONE) {
        return rc;
    }

failed:

    /* the request may outlive its answer: the fan-out must not feed it */
    ngx_omnibus_sub_unregister(sub);

    return rc;
}


/* where to resume from: ?after=, else the Last-Event-ID header */

static ngx_int_t
ngx_omnibus_subscribe_resume(ngx_http_request_t *r, ngx_str_t *after)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (ngx_http_arg(r, (u_char *) "after", 5, after) == NGX_OK) {
        return NGX_OK;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_DECLINED;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Last-Event-ID") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Last-Event-ID",
                               sizeof("Last-Event-ID") - 1)
               == 0
            && h[i].value.len)
        {
            *after = h[i].value;
            return NGX_OK;
        }
    }
}


void
ngx_omnibus_subscribe_init_process(ngx_omnibus_zone_t *zone)
{
    zone->fanout.handler = ngx_omnibus_subscribe_fanout;
}


/* news for this worker's subscribers */

static void
ngx_omnibus_subscribe_fanout(ngx_event_t *ev)
{
    u_char                   *match;
    uint64_t                  start;
    ngx_uint_t                i;
    ngx_str_t                 matched;
    ngx_pool_t               *pool;
    ngx_queue_t              *q, *next;
    ngx_array_t               copies, mine;
    ngx_omnibus_sub_t        *sub;
    ngx_omnibus_zone_t       *zone;
    ngx_omnibus_copy_t       *c, *m;
    ngx_omnibus_sub_batch_t  *batch;
    ngx_str_t                 all = ngx_string(">");

    zone = ev->data;
    ev->timedout = 0;

    if (ngx_queue_empty(&zone->subscribers)) {
        return;
    }

    start = ngx_omnibus_now_us();

    pool = ngx_create_pool(NGX_OMNIBUS_FANOUT_POOL, ev->log);
    if (pool == NULL) {
        return;
    }

    if (ngx_array_init(&copies, pool, 16, sizeof(ngx_omnibus_copy_t))
        != NGX_OK
        || ngx_omnibus_retain_read(zone, pool, &copies, NULL, &all,
                                   zone->cursor)
           != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, ev->log, 0,
                   "omnibus fan-out: %ui message(s) to %ui subscriber(s)",
                   copies.nelts, zone->nsubscribers);

    c = copies.elts;
    batch = NULL;
    match = NULL;
    ngx_str_null(&matched);

    for (q = ngx_queue_head(&zone->subscribers);
         q != ngx_queue_sentinel(&zone->subscribers);
         q = next)
    {
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_omnibus_sub_t, queue);

        if (sub->sse) {
            if (copies.nelts == 0) {
                continue;
            }

            /* the events once for every stream, the matches once a pattern */

            if (batch == NULL) {
                batch = ngx_omnibus_sse_render(c, copies.nelts, ev->log);
                match = ngx_pnalloc(pool, copies.nelts);

                if (batch == NULL || match == NULL) {
                    break;
                }
            }

            /* a copy: the stream of the pattern may end in its feed */

            if (matched.data == NULL
                || sub->pattern.len != matched.len
                || (matched.len
                    && ngx_strncmp(sub->pattern.data, matched.data,
                                   matched.len)
                       != 0))
            {
                for (i = 0; i < copies.nelts; i++) {
                    match[i] = (u_char) ngx_omnibus_pattern_match(
                                   &sub->pattern, c[i].topic.data,
                                   c[i].topic.len);
                }

                matched.len = sub->pattern.len;
                matched.data = ngx_pnalloc(pool, matched.len + 1);
                if (matched.data == NULL) {
                    break;
                }

                if (matched.len) {
                    ngx_memcpy(matched.data, sub->pattern.data, matched.len);
                }
            }

            ngx_omnibus_sse_feed(sub, batch, match);
            continue;
        }

        if (ngx_array_init(&mine, pool, 4, sizeof(ngx_omnibus_copy_t))
            != NGX_OK)
        {
            break;
        }

        for (i = 0; i < copies.nelts; i++) {
            if (!ngx_omnibus_pattern_match(&sub->pattern, c[i].topic.data,
                                           c[i].topic.len))
            {
                continue;
            }

            m = ngx_array_push(&mine);
            if (m == NULL) {
                break;
            }

            *m = c[i];
        }

        if (mine.nelts) {
            ngx_omnibus_sub_finalize(sub->r,
                                     ngx_omnibus_longpoll_reply(sub,
                                                    mine.elts, mine.nelts));
        }
    }

    if (batch) {
        ngx_omnibus_sub_release(batch);
    }

    ngx_destroy_pool(pool);

    ngx_omnibus_fanout_done(zone, start, copies.nelts);
}


void
ngx_omnibus_subscribe_exit_process(ngx_omnibus_zone_t *zone)
{
    ngx_queue_t         *q;
    ngx_omnibus_sub_t   *sub;
    ngx_http_request_t  *r;

    if (zone->fanout.posted) {
        ngx_delete_posted_event(&zone->fanout);
    }

    if (zone->fanout.timer_set) {
        ngx_del_timer(&zone->fanout);
    }

    /*
     * Streams have only cancelable timers, so a quitting worker gets
     * here with them open: end them, and clients resume elsewhere with
     * Last-Event-ID.  The last to leave releases the retain hold; for a
     * crashed worker its successor does (ngx_omnibus_fanout_reclaim()).
     */

    while (!ngx_queue_empty(&zone->subscribers)) {
        q = ngx_queue_head(&zone->subscribers);
        sub = ngx_queue_data(q, ngx_omnibus_sub_t, queue);
        r = sub->r;

        ngx_omnibus_sub_unregister(sub);

        if (sub->sse && r->header_sent) {
            (void) ngx_http_send_special(r, NGX_HTTP_LAST);
        }

        ngx_omnibus_sub_finalize(r, NGX_HTTP_CLOSE);
    }
}
