
/*
 * The dead letter queue: deliveries that failed for good, oldest first,
 * bounded by dlq_size (the oldest entry makes room).  An entry references
 * the message and says which route failed, after how many attempts, why
 * and when.  Replay queues the message again for that route only.
 */


#include "ngx_omnibus.h"


static void
ngx_omnibus_dlq_remove_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_dlq_entry_t *e)
{
    ngx_queue_remove(&e->queue);
    zone->sh->dlq_size--;

    ngx_omnibus_msg_unref_locked(zone, e->msg);
    ngx_slab_free_locked(zone->shpool, e);
}


static void
ngx_omnibus_dlq_evict_locked(ngx_omnibus_zone_t *zone, ngx_log_t *log)
{
    ngx_omnibus_sh_t         *sh;
    ngx_omnibus_dlq_entry_t  *e;

    sh = zone->sh;

    e = ngx_queue_data(ngx_queue_head(&sh->dlq), ngx_omnibus_dlq_entry_t,
                       queue);

    ngx_omnibus_dlq_remove_locked(zone, e);
    sh->dlq_evicted++;

    if (ngx_time() - sh->dlq_logged >= 10) {
        sh->dlq_logged = ngx_time();

        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "omnibus zone \"%V\": the dead letter queue is full, "
                      "its oldest entries are dropped (%uA so far)",
                      &zone->name, sh->dlq_evicted);
    }
}


void
ngx_omnibus_dlq_add(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *msg,
    ngx_uint_t slot, ngx_uint_t attempts, u_char *error, size_t len,
    ngx_log_t *log)
{
    ngx_time_t               *tp;
    ngx_omnibus_sh_t         *sh;
    ngx_omnibus_dlq_entry_t  *e;

    sh = zone->sh;
    tp = ngx_timeofday();

    ngx_shmtx_lock(&zone->shpool->mutex);

    e = ngx_omnibus_zone_alloc_locked(zone, sizeof(ngx_omnibus_dlq_entry_t));

    while (e == NULL && !ngx_queue_empty(&sh->dlq)) {
        ngx_omnibus_dlq_evict_locked(zone, log);
        e = ngx_slab_alloc_locked(zone->shpool,
                                  sizeof(ngx_omnibus_dlq_entry_t));
    }

    if (e == NULL) {
        sh->dlq_evicted++;
        ngx_shmtx_unlock(&zone->shpool->mutex);

        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "omnibus zone \"%V\": no memory for a dead letter "
                      "entry, message %*s is dropped", &zone->name,
                      (size_t) NGX_OMNIBUS_ID_LEN, msg->id);
        return;
    }

    e->msg = msg;
    e->failed = (uint64_t) tp->sec * 1000 + tp->msec;
    e->attempts = attempts;
    e->slot = slot;
    e->error_len = ngx_min(len, NGX_OMNIBUS_ERROR_LEN);
    ngx_memcpy(e->error, error, e->error_len);

    msg->refs++;

    ngx_queue_insert_tail(&sh->dlq, &e->queue);
    sh->dlq_size++;
    sh->dead++;

    if (sh->dlq_size > sh->dlq_max) {
        ngx_omnibus_dlq_evict_locked(zone, log);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


static void
ngx_omnibus_dlq_payload(ngx_omnibus_out_t *out, ngx_omnibus_msg_t *msg)
{
    u_char  *p;

    p = ngx_pnalloc(out->r->pool, msg->len + 1);
    if (p == NULL) {
        out->error = 1;
        return;
    }

    ngx_omnibus_msg_copy_payload(p, msg);

    /* JSON stays JSON; anything else becomes a string */

    if (msg->json) {
        ngx_omnibus_out_raw(out, p, msg->len);

    } else {
        ngx_omnibus_out_json_str(out, p, msg->len);
    }
}


void
ngx_omnibus_dlq_list(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_uint_t limit)
{
    uint64_t                  now;
    ngx_uint_t                n;
    ngx_queue_t              *q;
    ngx_time_t               *tp;
    ngx_omnibus_sh_t         *sh;
    ngx_omnibus_msg_t        *msg;
    ngx_omnibus_route_t      *route;
    ngx_omnibus_dlq_entry_t  *e;

    sh = zone->sh;
    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    ngx_shmtx_lock(&zone->shpool->mutex);

    ngx_omnibus_out_printf(out, "{\"size\":%ui,\"entries\":[", sh->dlq_size);

    n = 0;

    for (q = ngx_queue_head(&sh->dlq);
         q != ngx_queue_sentinel(&sh->dlq) && n < limit;
         q = ngx_queue_next(q), n++)
    {
        e = ngx_queue_data(q, ngx_omnibus_dlq_entry_t, queue);
        msg = e->msg;
        route = zone->by_slot[e->slot];

        ngx_omnibus_out_printf(out, "%s{\"id\":\"%*s\",\"topic\":",
                               n ? "," : "", (size_t) NGX_OMNIBUS_ID_LEN,
                               msg->id);
        ngx_omnibus_out_json_str(out, ngx_omnibus_msg_topic(msg),
                                 msg->topic_len);
        ngx_omnibus_out_printf(out, ",\"priority\":%d,\"route\":",
                               (int) msg->priority);

        if (route) {
            ngx_omnibus_out_json_str(out, route->name.data, route->name.len);

        } else {
            ngx_omnibus_out_printf(out, "null");
        }

        ngx_omnibus_out_printf(out, ",\"attempts\":%uD,\"error\":",
                               e->attempts);
        ngx_omnibus_out_json_str(out, e->error, e->error_len);
        ngx_omnibus_out_printf(out, ",\"failed_at\":%uL.%03uL,"
                               "\"age_seconds\":%uL,\"payload\":",
                               e->failed / 1000, e->failed % 1000,
                               now > e->failed ? (now - e->failed) / 1000
                                               : 0);
        ngx_omnibus_dlq_payload(out, msg);
        ngx_omnibus_out_printf(out, "}");
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_omnibus_out_printf(out, "]}\n");
}


ngx_uint_t
ngx_omnibus_dlq_purge(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t         n;
    ngx_omnibus_sh_t  *sh;

    sh = zone->sh;
    n = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    while (!ngx_queue_empty(&sh->dlq)) {
        ngx_omnibus_dlq_remove_locked(zone,
                  ngx_queue_data(ngx_queue_head(&sh->dlq),
                                 ngx_omnibus_dlq_entry_t, queue));
        n++;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return n;
}


/*
 * Entries failed at most max_age seconds ago (all when max_age < 0) are
 * queued again under their id, for the failed route only.  Entries whose
 * shard is full stay for a later replay.
 */

ngx_uint_t
ngx_omnibus_dlq_replay(ngx_omnibus_zone_t *zone, time_t max_age,
    ngx_pool_t *pool)
{
    u_char                   *buf;
    uint64_t                  now, notify[NGX_OMNIBUS_MAX_SHARDS / 64];
    ngx_uint_t                n, s;
    ngx_time_t               *tp;
    ngx_queue_t              *q, *next;
    ngx_omnibus_sh_t         *sh;
    ngx_omnibus_msg_t        *msg, *copy;
    ngx_omnibus_offer_t       offer;
    ngx_omnibus_dlq_entry_t  *e;

    sh = zone->sh;
    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;
    n = 0;

    ngx_memzero(notify, sizeof(notify));

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (q = ngx_queue_head(&sh->dlq); q != ngx_queue_sentinel(&sh->dlq);
         q = next)
    {
        next = ngx_queue_next(q);
        e = ngx_queue_data(q, ngx_omnibus_dlq_entry_t, queue);
        msg = e->msg;

        if (max_age >= 0 && now > e->failed
            && (now - e->failed) / 1000 > (uint64_t) max_age)
        {
            continue;
        }

        s = msg->shard < sh->nshards ? msg->shard
                                     : msg->shard % sh->nshards;

        if (sh->shards[s].queued >= sh->queue_size) {
            continue;
        }

        buf = ngx_pnalloc(pool, msg->len + 1);
        if (buf == NULL) {
            break;
        }

        ngx_omnibus_msg_copy_payload(buf, msg);

        offer.topic.data = ngx_omnibus_msg_topic(msg);
        offer.topic.len = msg->topic_len;
        offer.ctype.data = ngx_omnibus_msg_ctype(msg);
        offer.ctype.len = msg->ctype_len;
        offer.key.data = ngx_omnibus_msg_key(msg);
        offer.key.len = msg->key_len;
        offer.payload.data = buf;
        offer.payload.len = msg->len;
        offer.priority = msg->priority;
        offer.shard = s;
        offer.json = msg->json;

        copy = ngx_omnibus_msg_alloc_locked(zone, &offer);
        if (copy == NULL) {
            break;
        }

        /* the same id: receivers deduplicate on it */
        copy->seq = msg->seq;
        copy->born = now;
        copy->only = (uint64_t) 1 << e->slot;
        ngx_memcpy(copy->id, msg->id, NGX_OMNIBUS_ID_LEN);

        ngx_omnibus_queue_push_locked(zone, &sh->shards[s], copy);
        ngx_omnibus_dlq_remove_locked(zone, e);

        notify[s / 64] |= (uint64_t) 1 << (s % 64);
        n++;
    }

    sh->dlq_replayed += n;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    for (s = 0; s < sh->cap_shards; s++) {
        if (notify[s / 64] & ((uint64_t) 1 << (s % 64))) {
            ngx_omnibus_notify(zone, s);
        }
    }

    return n;
}
