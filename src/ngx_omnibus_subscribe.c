
/*
 * Subscribers: SSE streams and long-polls on any worker.  Every dispatched
 * message enters its shard's retain ring with a ring sequence number;
 * the owner then wakes the workers that have subscribers, and each of
 * them feeds its own from the rings, past its per-shard cursor.  Resuming
 * (Last-Event-ID, ?after=) reads the same rings.
 */


#include "ngx_omnibus.h"


#define NGX_OMNIBUS_SUB_BUF       4096
#define NGX_OMNIBUS_POLL_LIMIT    1000


typedef struct {
    uint64_t                born;
    uint64_t                rseq;
    ngx_uint_t              shard;
    ngx_uint_t              priority;
    ngx_uint_t              json;
    u_char                 *id;
    ngx_str_t               topic;
    ngx_str_t               payload;
} ngx_omnibus_copy_t;


typedef struct {
    ngx_queue_t             queue;       /* zone->subscribers */
    ngx_http_request_t     *r;
    ngx_omnibus_zone_t     *zone;
    ngx_str_t               pattern;
    ngx_event_t             timer;       /* heartbeat or poll timeout */
    ngx_chain_t            *out;
    ngx_chain_t            *free;
    ngx_chain_t            *busy;
    ngx_chain_t           **last;
    size_t                  max_buffer;
    unsigned                sse:1;
    unsigned                live:1;
} ngx_omnibus_sub_t;


static void ngx_omnibus_sub_cleanup(void *data);
static void ngx_omnibus_sub_heartbeat(ngx_event_t *ev);
static void ngx_omnibus_sub_poll_timeout(ngx_event_t *ev);
static void ngx_omnibus_sub_write_handler(ngx_http_request_t *r);
static void ngx_omnibus_sub_fanout(ngx_event_t *ev);
static void ngx_omnibus_sub_hold(ngx_omnibus_zone_t *zone, ngx_uint_t on);
static void ngx_omnibus_sub_unregister(ngx_omnibus_sub_t *sub);
static void ngx_omnibus_sub_finalize(ngx_http_request_t *r, ngx_int_t rc);
static ngx_int_t ngx_omnibus_sub_collect(ngx_omnibus_zone_t *zone,
    ngx_pool_t *pool, ngx_array_t *copies, ngx_str_t *after,
    ngx_str_t *pattern, uint64_t *cursor);


char *
ngx_omnibus_subscribe_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_omnibus_loc_conf_t *olcf = conf;

    ngx_str_t                 *value, v;
    ngx_uint_t                 i;
    ngx_http_core_loc_conf_t  *clcf;

    value = cf->args->elts;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        return "is duplicate: the location already has a content handler";
    }

    olcf->subscribe = ngx_omnibus_zone_use(cf, &value[1]);
    if (olcf->subscribe == NULL) {
        return NGX_CONF_ERROR;
    }

    if (olcf->subscribe->retain == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "omnibus zone \"%V\" has retain=0: subscribers "
                           "read the retain ring, give it retain=N",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    olcf->heartbeat = 15000;
    olcf->max_buffer = 1024 * 1024;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "heartbeat=", 10) == 0) {
            v.data = value[i].data + 10;
            v.len = value[i].len - 10;

            olcf->heartbeat = ngx_parse_time(&v, 0);
            if (olcf->heartbeat == (ngx_msec_t) NGX_ERROR
                || olcf->heartbeat == 0)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "buffer=", 7) == 0) {
            v.data = value[i].data + 7;
            v.len = value[i].len - 7;

            olcf->max_buffer = ngx_parse_size(&v);
            if (olcf->max_buffer == (size_t) NGX_ERROR
                || olcf->max_buffer < NGX_OMNIBUS_SUB_BUF)
            {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    olcf->subscribe->subscribed = 1;
    clcf->handler = ngx_omnibus_subscribe_handler;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid omnibus_subscribe parameter \"%V\" (expected "
                       "heartbeat=TIME or buffer=SIZE of at least 4k)",
                       &value[i]);

    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_omnibus_subscribe_init_process(ngx_omnibus_zone_t *zone,
    ngx_cycle_t *cycle)
{
    ngx_queue_init(&zone->subscribers);

    zone->fanout.handler = ngx_omnibus_sub_fanout;
    zone->fanout.data = zone;
    zone->fanout.log = cycle->log;

    zone->cursor = ngx_palloc(cycle->pool,
                              zone->sh->cap_shards * sizeof(uint64_t));
    if (zone->cursor == NULL) {
        return NGX_ERROR;
    }

    /* a crashed predecessor's hold goes; cursors start with a subscriber */
    ngx_omnibus_sub_hold(zone, 0);
    ngx_omnibus_subscribe_reclaim(zone);

    return NGX_OK;
}


/*
 * While this worker has subscribers the retain rings keep what its
 * fan-out has not fed them yet (see ngx_omnibus_retain_locked()), and
 * the zone keeps their count under our pid.
 */

static void
ngx_omnibus_sub_hold(ngx_omnibus_zone_t *zone, ngx_uint_t on)
{
    ngx_uint_t               s, i;
    ngx_omnibus_shard_t     *shard;
    ngx_omnibus_sub_proc_t  *proc;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (s = 0; s < zone->sh->cap_shards; s++) {
        shard = &zone->sh->shards[s];

        if (on) {
            zone->cursor[s] = shard->rseq;
        }

        if (ngx_worker < NGX_OMNIBUS_HOLD_SLOTS) {
            shard->hold[ngx_worker] = on ? shard->rseq + 1 : 0;
        }
    }

    /* an entry each for at most NGX_MAX_PROCESSES live processes */

    if (on) {
        for (i = 0; i < NGX_MAX_PROCESSES; i++) {
            proc = &zone->sh->sub_procs[i];

            if (proc->pid == 0) {
                proc->pid = ngx_pid;
                proc->count = 0;
                zone->sub_proc = proc;
                zone->sh->nsub_procs++;
                break;
            }
        }

    } else if (zone->sub_proc) {
        zone->sub_proc->pid = 0;
        zone->sub_proc = NULL;
        zone->sh->nsub_procs--;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/*
 * A worker killed with its streams open never unregistered them: free
 * its entry, by the same liveness test that takes over its deliveries.
 */

void
ngx_omnibus_subscribe_reclaim(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t               i, n;
    ngx_omnibus_sh_t        *sh;
    ngx_omnibus_sub_proc_t  *proc;

    if (!zone->subscribed) {
        return;
    }

    sh = zone->sh;
    n = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        proc = &sh->sub_procs[i];

        if (proc->pid == 0 || proc->pid == ngx_pid
            || kill(proc->pid, 0) == 0 || ngx_errno != NGX_ESRCH)
        {
            continue;
        }

        n += proc->count;
        proc->pid = 0;
        proc->count = 0;
        sh->nsub_procs--;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (n) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "omnibus zone \"%V\": %ui subscriber(s) of a worker "
                      "that is gone left the count", &zone->name, n);
    }
}


ngx_uint_t
ngx_omnibus_subscribe_count(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t               i, n;
    ngx_omnibus_sub_proc_t  *proc;

    n = 0;

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        proc = &zone->sh->sub_procs[i];

        if (proc->pid) {
            n += proc->count;
        }
    }

    return n;
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

    /*
     * Streams have only cancelable timers, so a quitting worker gets
     * here with them open: end them, and clients resume elsewhere with
     * Last-Event-ID.
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

    /*
     * Unregistering took each one off the gauge and released the hold
     * with the last; for a crashed worker init_process releases the hold
     * and ngx_omnibus_subscribe_reclaim() its entry.
     */
}


/* after a dispatch: the workers with subscribers have news */

void
ngx_omnibus_subscribe_wake(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t  w;

    if (zone->sh->nsub_procs == 0) {
        return;
    }

    for (w = 0; w < ngx_omnibus_workers; w++) {
        if (w != ngx_worker) {
            ngx_omnibus_notify_worker(zone, w);

        } else if (zone->nsubscribers) {
            ngx_post_event(&zone->fanout, &ngx_posted_events);
        }
    }
}


void
ngx_omnibus_subscribe_feed(ngx_omnibus_zone_t *zone)
{
    if (!ngx_queue_empty(&zone->subscribers)) {
        ngx_post_event(&zone->fanout, &ngx_posted_events);
    }
}


/* ids are <instance>-<shard hex>-<seq hex> */

static ngx_int_t
ngx_omnibus_sub_parse_id(ngx_str_t *id, ngx_uint_t *shard, uint64_t *seq)
{
    ngx_int_t  s;
    uint64_t   q;
    u_char    *p;

    if (id->len != NGX_OMNIBUS_ID_LEN || id->data[20] != '-'
        || id->data[25] != '-')
    {
        return NGX_ERROR;
    }

    s = ngx_hextoi(id->data + 21, 4);
    if (s == NGX_ERROR) {
        return NGX_ERROR;
    }

    q = 0;

    for (p = id->data + 26; p < id->data + NGX_OMNIBUS_ID_LEN; p++) {
        if (*p >= '0' && *p <= '9') {
            q = q * 16 + (*p - '0');

        } else if (*p >= 'a' && *p <= 'f') {
            q = q * 16 + (*p - 'a' + 10);

        } else {
            return NGX_ERROR;
        }
    }

    *shard = s;
    *seq = q;

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_omnibus_copy_cmp(const void *a, const void *b)
{
    const ngx_omnibus_copy_t  *ca = a, *cb = b;

    if (ca->born != cb->born) {
        return ca->born < cb->born ? -1 : 1;
    }

    if (ca->shard != cb->shard) {
        return ca->shard < cb->shard ? -1 : 1;
    }

    return ca->rseq < cb->rseq ? -1 : (ca->rseq > cb->rseq);
}


/*
 * Copies retained messages out of the zone.  With "cursor": those past
 * the cursors, which move.  With "after": those after that message (by
 * time across shards, by ring order in its own shard), or all retained
 * when it is gone.  With neither: nothing.
 */

static ngx_int_t
ngx_omnibus_sub_collect(ngx_omnibus_zone_t *zone, ngx_pool_t *pool,
    ngx_array_t *copies, ngx_str_t *after, ngx_str_t *pattern,
    uint64_t *cursor)
{
    u_char               *p;
    uint64_t              seq, from, born;
    ngx_uint_t            s, as;
    ngx_queue_t          *q;
    ngx_omnibus_sh_t     *sh;
    ngx_omnibus_msg_t    *msg;
    ngx_omnibus_copy_t   *c;
    ngx_omnibus_shard_t  *shard;

    sh = zone->sh;
    as = NGX_OMNIBUS_MAX_SHARDS;
    seq = 0;
    born = 0;
    from = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    if (after && ngx_omnibus_sub_parse_id(after, &as, &seq) == NGX_OK
        && as < sh->cap_shards)
    {
        shard = &sh->shards[as];

        for (q = ngx_queue_head(&shard->retain);
             q != ngx_queue_sentinel(&shard->retain);
             q = ngx_queue_next(q))
        {
            msg = ngx_queue_data(q, ngx_omnibus_msg_t, rlink);

            if (msg->seq == seq
                && ngx_strncmp(msg->id, after->data, NGX_OMNIBUS_ID_LEN) == 0)
            {
                from = msg->rseq;
                born = msg->born;
                break;
            }
        }
    }

    for (s = 0; s < sh->cap_shards; s++) {
        shard = &sh->shards[s];

        if (cursor) {
            if (shard->rseq <= cursor[s]) {
                continue;
            }

            from = cursor[s];
            cursor[s] = shard->rseq;

            if (ngx_worker < NGX_OMNIBUS_HOLD_SLOTS) {
                shard->hold[ngx_worker] = cursor[s] + 1;
            }

        } else if (after == NULL) {
            continue;
        }

        /* walk back to the first message past "from", then forward */

        for (q = ngx_queue_last(&shard->retain);
             q != ngx_queue_sentinel(&shard->retain);
             q = ngx_queue_prev(q))
        {
            msg = ngx_queue_data(q, ngx_omnibus_msg_t, rlink);

            if (cursor || s == as) {
                if (msg->rseq <= from) {
                    break;
                }

            } else if (msg->born < born) {
                break;
            }
        }

        for (q = ngx_queue_next(q);
             q != ngx_queue_sentinel(&shard->retain);
             q = ngx_queue_next(q))
        {
            msg = ngx_queue_data(q, ngx_omnibus_msg_t, rlink);

            if (!ngx_omnibus_pattern_match(pattern,
                                           ngx_omnibus_msg_topic(msg),
                                           msg->topic_len))
            {
                continue;
            }

            c = ngx_array_push(copies);
            p = ngx_pnalloc(pool, NGX_OMNIBUS_ID_LEN + msg->topic_len
                                  + msg->len);
            if (c == NULL || p == NULL) {
                ngx_shmtx_unlock(&zone->shpool->mutex);
                return NGX_ERROR;
            }

            c->born = msg->born;
            c->rseq = msg->rseq;
            c->shard = s;
            c->priority = msg->priority;
            c->json = msg->json;
            c->id = p;
            p = ngx_cpymem(p, msg->id, NGX_OMNIBUS_ID_LEN);
            c->topic.data = p;
            c->topic.len = msg->topic_len;
            p = ngx_cpymem(p, ngx_omnibus_msg_topic(msg), msg->topic_len);
            c->payload.data = p;
            c->payload.len = msg->len;
            ngx_omnibus_msg_copy_payload(p, msg);
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (copies->nelts > 1) {
        ngx_qsort(copies->elts, copies->nelts, sizeof(ngx_omnibus_copy_t),
                  ngx_omnibus_copy_cmp);
    }

    return NGX_OK;
}


/* output of a long-lived response: 4k buffers, reused once sent */

static ngx_int_t
ngx_omnibus_sub_append(ngx_omnibus_sub_t *sub, u_char *p, size_t len)
{
    size_t        n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    while (len) {
        cl = NULL;

        if (sub->last != &sub->out) {
            cl = (ngx_chain_t *) ((u_char *) sub->last
                                  - offsetof(ngx_chain_t, next));
            if (cl->buf->last == cl->buf->end) {
                cl = NULL;
            }
        }

        if (cl == NULL) {
            cl = ngx_chain_get_free_buf(sub->r->pool, &sub->free);
            if (cl == NULL) {
                return NGX_ERROR;
            }

            b = cl->buf;

            if (b->start == NULL) {
                b->start = ngx_palloc(sub->r->pool, NGX_OMNIBUS_SUB_BUF);
                if (b->start == NULL) {
                    return NGX_ERROR;
                }

                b->end = b->start + NGX_OMNIBUS_SUB_BUF;
                b->tag = (ngx_buf_tag_t) &ngx_omnibus_module;
                b->temporary = 1;
            }

            b->pos = b->start;
            b->last = b->start;
            b->flush = 0;

            *sub->last = cl;
            sub->last = &cl->next;
        }

        b = cl->buf;
        n = ngx_min(len, (size_t) (b->end - b->last));
        b->last = ngx_cpymem(b->last, p, n);
        p += n;
        len -= n;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_omnibus_sub_flush(ngx_omnibus_sub_t *sub)
{
    off_t         busy;
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    if (sub->out) {
        cl = (ngx_chain_t *) ((u_char *) sub->last
                              - offsetof(ngx_chain_t, next));
        cl->buf->flush = 1;
    }

    rc = ngx_http_output_filter(sub->r, sub->out);

    ngx_chain_update_chains(sub->r->pool, &sub->free, &sub->busy, &sub->out,
                            (ngx_buf_tag_t) &ngx_omnibus_module);
    sub->last = &sub->out;

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    /* a client that does not read cannot make us buffer without end */

    busy = 0;

    for (cl = sub->busy; cl; cl = cl->next) {
        busy += cl->buf->last - cl->buf->pos;
    }

    if ((size_t) busy > sub->max_buffer) {
        (void) ngx_atomic_fetch_add(&sub->zone->sh->slow_dropped, 1);

        ngx_log_error(NGX_LOG_WARN, sub->r->connection->log, 0,
                      "omnibus subscriber dropped: %O bytes unsent, "
                      "more than its buffer of %uz", busy, sub->max_buffer);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_omnibus_sub_event(ngx_omnibus_sub_t *sub, ngx_omnibus_copy_t *c)
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
ngx_omnibus_sub_unregister(ngx_omnibus_sub_t *sub)
{
    if (!sub->live) {
        return;
    }

    ngx_queue_remove(&sub->queue);
    sub->live = 0;
    sub->zone->nsubscribers--;

    if (sub->zone->sub_proc) {
        sub->zone->sub_proc->count = sub->zone->nsubscribers;
    }

    if (sub->zone->nsubscribers == 0) {
        ngx_omnibus_sub_hold(sub->zone, 0);
    }
}


static ngx_int_t
ngx_omnibus_sub_last_event_id(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

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

        if (h[i].key.len == 13
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Last-Event-ID", 13)
               == 0
            && h[i].value.len)
        {
            *id = h[i].value;
            return NGX_OK;
        }
    }
}


static ngx_int_t
ngx_omnibus_sub_poll_reply(ngx_omnibus_sub_t *sub, ngx_array_t *copies)
{
    ngx_uint_t           i, n;
    ngx_http_request_t  *r;
    ngx_omnibus_out_t    out;
    ngx_omnibus_copy_t  *c;

    r = sub->r;
    c = copies->elts;
    n = ngx_min(copies->nelts, NGX_OMNIBUS_POLL_LIMIT);

    ngx_omnibus_sub_unregister(sub);

    if (sub->timer.timer_set) {
        ngx_del_timer(&sub->timer);
    }

    ngx_omnibus_out_init(&out, r);
    ngx_omnibus_out_printf(&out, "{\"messages\":[");

    for (i = 0; i < n; i++) {
        ngx_omnibus_out_printf(&out, "%s{\"id\":\"%*s\",\"topic\":",
                               i ? "," : "", (size_t) NGX_OMNIBUS_ID_LEN,
                               c[i].id);
        ngx_omnibus_out_json_str(&out, c[i].topic.data, c[i].topic.len);
        ngx_omnibus_out_printf(&out, ",\"priority\":%ui,\"payload\":",
                               c[i].priority);

        if (c[i].json) {
            ngx_omnibus_out_raw(&out, c[i].payload.data, c[i].payload.len);

        } else {
            ngx_omnibus_out_json_str(&out, c[i].payload.data,
                                     c[i].payload.len);
        }

        ngx_omnibus_out_printf(&out, "}");
    }

    ngx_omnibus_out_printf(&out, "],\"last_id\":\"%*s\"}\n",
                           (size_t) NGX_OMNIBUS_ID_LEN, c[n - 1].id);

    return ngx_omnibus_out_send(&out, NGX_HTTP_OK, "application/json");
}


/* news for this worker's subscribers */

static void
ngx_omnibus_sub_fanout(ngx_event_t *ev)
{
    ngx_uint_t           i;
    ngx_pool_t          *pool;
    ngx_queue_t         *q, *next;
    ngx_array_t          copies, mine;
    ngx_omnibus_sub_t   *sub;
    ngx_omnibus_zone_t  *zone;
    ngx_omnibus_copy_t  *c, *m;
    ngx_str_t            all = ngx_string(">");

    zone = ev->data;

    if (ngx_queue_empty(&zone->subscribers)) {
        return;
    }

    pool = ngx_create_pool(16384, ev->log);
    if (pool == NULL) {
        return;
    }

    if (ngx_array_init(&copies, pool, 16, sizeof(ngx_omnibus_copy_t))
        != NGX_OK
        || ngx_omnibus_sub_collect(zone, pool, &copies, NULL, &all,
                                   zone->cursor)
           != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return;
    }

    c = copies.elts;

    for (q = ngx_queue_head(&zone->subscribers);
         q != ngx_queue_sentinel(&zone->subscribers);
         q = next)
    {
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_omnibus_sub_t, queue);

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

            if (sub->sse) {
                if (ngx_omnibus_sub_event(sub, &c[i]) != NGX_OK) {
                    break;
                }

                continue;
            }

            m = ngx_array_push(&mine);
            if (m == NULL) {
                break;
            }

            *m = c[i];
        }

        if (sub->sse) {
            if (sub->out && ngx_omnibus_sub_flush(sub) != NGX_OK) {
                ngx_omnibus_sub_finalize(sub->r, NGX_ERROR);
            }

        } else if (mine.nelts) {
            /* the reply copies what it needs before the pool goes */
            ngx_omnibus_sub_finalize(sub->r,
                                     ngx_omnibus_sub_poll_reply(sub, &mine));
        }
    }

    ngx_destroy_pool(pool);
}


ngx_int_t
ngx_omnibus_subscribe_handler(ngx_http_request_t *r)
{
    u_char                  *p, *last;
    ngx_int_t                rc, n;
    ngx_str_t                after, value, *resume;
    ngx_uint_t               s, sse;
    ngx_array_t              copies;
    ngx_table_elt_t         *h;
    ngx_omnibus_sub_t       *sub;
    ngx_pool_cleanup_t      *cln;
    ngx_omnibus_copy_t      *c;
    ngx_omnibus_zone_t      *zone;
    ngx_omnibus_loc_conf_t  *olcf;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_omnibus_reply_not_allowed(r, "GET, HEAD");
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_omnibus_module);
    zone = olcf->subscribe;

    sub = ngx_pcalloc(r->pool, sizeof(ngx_omnibus_sub_t));
    if (sub == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sub->r = r;
    sub->zone = zone;
    sub->last = &sub->out;
    sub->max_buffer = olcf->max_buffer;

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
    sse = (h && ngx_strlcasestrn(h->value.data,
                                 h->value.data + h->value.len,
                                 (u_char *) "text/event-stream", 17 - 1)
                != NULL);
    sub->sse = sse;

    resume = NULL;

    if (ngx_http_arg(r, (u_char *) "after", 5, &after) == NGX_OK) {
        resume = &after;

    } else if (ngx_omnibus_sub_last_event_id(r, &after) == NGX_OK) {
        resume = &after;
    }

    if (ngx_array_init(&copies, r->pool, 16, sizeof(ngx_omnibus_copy_t))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = 30;

    if (!sse && ngx_http_arg(r, (u_char *) "timeout", 7, &value) == NGX_OK) {
        n = ngx_atoi(value.data, value.len);

        if (n == NGX_ERROR || n > 3600) {
            return ngx_omnibus_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                           "invalid_timeout",
                                           "timeout is 0 to 3600 seconds", 0);
        }
    }

    /* register before reading the rings: nothing falls in between */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_omnibus_sub_cleanup;
    cln->data = sub;

    if (ngx_queue_empty(&zone->subscribers)) {
        ngx_omnibus_sub_hold(zone, 1);
    }

    ngx_queue_insert_tail(&zone->subscribers, &sub->queue);
    sub->live = 1;
    zone->nsubscribers++;

    if (zone->sub_proc) {
        zone->sub_proc->count = zone->nsubscribers;
    }

    if (resume
        && ngx_omnibus_sub_collect(zone, r->pool, &copies, resume,
                                   &sub->pattern, NULL)
           != NGX_OK)
    {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto failed;
    }

    sub->timer.data = sub;
    sub->timer.log = r->connection->log;
    sub->timer.cancelable = 1;

    if (!sse) {
        if (copies.nelts) {
            return ngx_omnibus_sub_poll_reply(sub, &copies);
        }

        sub->timer.handler = ngx_omnibus_sub_poll_timeout;
        ngx_add_timer(&sub->timer, (ngx_msec_t) n * 1000);

        r->main->count++;
        r->read_event_handler = ngx_http_test_reading;

        return NGX_DONE;
    }

    /* SSE: headers now, events as they come */

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = -1;
    ngx_str_set(&r->headers_out.content_type, "text/event-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto failed;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-cache");

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto failed;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Accel-Buffering");
    ngx_str_set(&h->value, "no");

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        goto failed;
    }

    rc = NGX_ERROR;

    if (ngx_omnibus_sub_append(sub, (u_char *) ": omnibus\n\n", 11)
        != NGX_OK)
    {
        goto failed;
    }

    c = copies.elts;

    for (s = 0; s < copies.nelts; s++) {
        if (ngx_omnibus_sub_event(sub, &c[s]) != NGX_OK) {
            goto failed;
        }
    }

    if (ngx_omnibus_sub_flush(sub) != NGX_OK) {
        goto failed;
    }

    sub->timer.handler = ngx_omnibus_sub_heartbeat;
    ngx_add_timer(&sub->timer, olcf->heartbeat);

    r->main->count++;
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_omnibus_sub_write_handler;

    return NGX_DONE;

failed:

    /* the request may outlive its answer: the fan-out must not feed it */
    ngx_omnibus_sub_unregister(sub);

    return rc;
}


static void
ngx_omnibus_sub_heartbeat(ngx_event_t *ev)
{
    ngx_omnibus_sub_t       *sub;
    ngx_omnibus_loc_conf_t  *olcf;

    sub = ev->data;
    olcf = ngx_http_get_module_loc_conf(sub->r, ngx_omnibus_module);

    if (ngx_omnibus_sub_append(sub, (u_char *) ":\n\n", 3) != NGX_OK
        || ngx_omnibus_sub_flush(sub) != NGX_OK)
    {
        ngx_omnibus_sub_finalize(sub->r, NGX_ERROR);
        return;
    }

    ngx_add_timer(ev, olcf->heartbeat);
}


static void
ngx_omnibus_sub_poll_timeout(ngx_event_t *ev)
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


/*
 * From our own events (fan-out, timers) rather than the connection's:
 * a termination is posted to the connection, and a client that neither
 * reads nor writes would never run it, so run it now.
 */

static void
ngx_omnibus_sub_finalize(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_connection_t  *c;

    c = r->connection;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_omnibus_sub_write_handler(ngx_http_request_t *r)
{
    ngx_omnibus_sub_t   *sub;
    ngx_pool_cleanup_t  *cln;

    /* the subscriber is the data of our pool cleanup */

    sub = NULL;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_omnibus_sub_cleanup) {
            sub = cln->data;
            break;
        }
    }

    if (sub == NULL || ngx_omnibus_sub_flush(sub) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_ERROR);
    }
}


static void
ngx_omnibus_sub_cleanup(void *data)
{
    ngx_omnibus_sub_t *sub = data;

    ngx_omnibus_sub_unregister(sub);

    if (sub->timer.timer_set) {
        ngx_del_timer(&sub->timer);
    }
}
