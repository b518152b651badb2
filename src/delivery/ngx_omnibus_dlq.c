
/*
 * The dead letter queue: deliveries that failed for good, oldest first,
 * bounded by dlq_size (the oldest entry makes room).  An entry references
 * the message and says which route failed, after how many attempts, why
 * and when.  Replay queues the message again for that route only.
 */


#include <ngx_omnibus_delivery.h>


typedef struct {
    ngx_queue_t                 queue;
    ngx_omnibus_msg_t          *msg;
    uint64_t                    failed;      /* wall clock, ms */
    uint32_t                    attempts;
    uint16_t                    slot;
    u_char                      error_len;
    u_char                      error[NGX_OMNIBUS_ERROR_LEN];
} ngx_omnibus_dlq_entry_t;


static void
ngx_omnibus_dlq_remove_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_dlq_entry_t *e)
{
    ngx_queue_remove(&e->queue);
    zone->sh->dlq_size--;

    ngx_omnibus_msg_unref_locked(zone->shpool, e->msg);
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

    if (ngx_time() - sh->dlq_logged >= NGX_OMNIBUS_LOG_THROTTLE) {
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
    ngx_omnibus_sh_t         *sh;
    ngx_omnibus_dlq_entry_t  *e;

    sh = zone->sh;

    ngx_shmtx_lock(&zone->shpool->mutex);

    e = ngx_omnibus_alloc_locked(zone, sizeof(ngx_omnibus_dlq_entry_t));

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
    e->failed = ngx_omnibus_now_ms();
    e->attempts = attempts;
    e->slot = slot;
    e->error_len = ngx_min(len, NGX_OMNIBUS_ERROR_LEN);
    ngx_memcpy(e->error, error, e->error_len);

    msg->refs++;

    ngx_queue_insert_tail(&sh->dlq, &e->queue);
    sh->dlq_size++;
    sh->dead++;

    if (zone->store) {
        zone->store->dead(zone, msg,
                          zone->by_slot[slot] ? &zone->by_slot[slot]->name
                                              : NULL,
                          attempts, error, e->error_len);
    }

    if (sh->dlq_size > sh->dlq_max) {
        ngx_omnibus_dlq_evict_locked(zone, log);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/* a stored dead letter, loaded back into a new zone */

void
ngx_omnibus_dlq_restore(ngx_omnibus_zone_t *zone, ngx_omnibus_offer_t *offer,
    ngx_str_t *route, ngx_uint_t attempts, ngx_str_t *error, uint64_t failed)
{
    ngx_uint_t                 i;
    ngx_omnibus_sh_t          *sh;
    ngx_omnibus_msg_t         *msg;
    ngx_omnibus_route_t      **routes, *r;
    ngx_omnibus_dlq_entry_t   *e;

    sh = zone->sh;
    routes = zone->routes.elts;
    r = NULL;

    for (i = 0; i < zone->routes.nelts; i++) {
        if (routes[i]->name.len == route->len
            && ngx_strncmp(routes[i]->name.data, route->data, route->len)
               == 0)
        {
            r = routes[i];
            break;
        }
    }

    if (r == NULL) {
        return;                     /* the route is gone: it stays stored */
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    msg = ngx_omnibus_msg_create_locked(zone, offer);
    e = ngx_omnibus_alloc_locked(zone, sizeof(ngx_omnibus_dlq_entry_t));

    if (msg == NULL || e == NULL) {
        if (msg) {
            ngx_omnibus_msg_free_locked(zone->shpool, msg);
        }

        if (e) {
            ngx_slab_free_locked(zone->shpool, e);
        }

        ngx_omnibus_zone_nomem(zone, ngx_cycle->log);
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return;
    }

    ngx_memcpy(msg->id, offer->id, NGX_OMNIBUS_ID_LEN);
    msg->born = failed;

    e->msg = msg;
    e->failed = failed;
    e->attempts = attempts;
    e->slot = r->slot.index;
    e->error_len = ngx_min(error->len, NGX_OMNIBUS_ERROR_LEN);
    ngx_memcpy(e->error, error->data, e->error_len);

    ngx_queue_insert_tail(&sh->dlq, &e->queue);
    sh->dlq_size++;

    if (sh->dlq_size > sh->dlq_max) {
        ngx_omnibus_dlq_evict_locked(zone, ngx_cycle->log);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/*
 * Copies the oldest "limit" entries out of the zone into "items"; *size
 * is how many the queue holds in all.
 */

ngx_int_t
ngx_omnibus_dlq_read(ngx_omnibus_zone_t *zone, ngx_pool_t *pool,
    ngx_uint_t limit, ngx_array_t *items, ngx_uint_t *size)
{
    u_char                   *p;
    ngx_uint_t                n;
    ngx_queue_t              *q;
    ngx_omnibus_sh_t         *sh;
    ngx_omnibus_msg_t        *msg;
    ngx_omnibus_dlq_item_t   *it;
    ngx_omnibus_dlq_entry_t  *e;

    sh = zone->sh;

    ngx_shmtx_lock(&zone->shpool->mutex);

    *size = sh->dlq_size;

    for (q = ngx_queue_head(&sh->dlq), n = 0;
         q != ngx_queue_sentinel(&sh->dlq) && n < limit;
         q = ngx_queue_next(q), n++)
    {
        e = ngx_queue_data(q, ngx_omnibus_dlq_entry_t, queue);
        msg = e->msg;

        it = ngx_array_push(items);
        p = ngx_pnalloc(pool, msg->topic_len + e->error_len + msg->len);

        if (it == NULL || p == NULL) {
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return NGX_ERROR;
        }

        ngx_memcpy(it->id, msg->id, NGX_OMNIBUS_ID_LEN);
        it->priority = msg->priority;
        it->route = zone->by_slot[e->slot];
        it->attempts = e->attempts;
        it->failed = e->failed;
        it->json = msg->json;

        it->topic.data = p;
        it->topic.len = msg->topic_len;
        p = ngx_cpymem(p, ngx_omnibus_msg_topic(msg), msg->topic_len);

        it->error.data = p;
        it->error.len = e->error_len;
        p = ngx_cpymem(p, e->error, e->error_len);

        it->payload.data = p;
        it->payload.len = msg->len;
        ngx_omnibus_msg_copy_payload(p, msg);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OK;
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

    if (zone->store) {
        zone->store->purged(zone);
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
    ngx_queue_t              *q, *next;
    ngx_omnibus_sh_t         *sh;
    ngx_omnibus_msg_t        *msg, *copy;
    ngx_omnibus_offer_t       offer;
    ngx_omnibus_dlq_entry_t  *e;

    sh = zone->sh;
    now = ngx_omnibus_now_ms();
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

        copy = ngx_omnibus_msg_create_locked(zone, &offer);
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

        if (zone->store) {
            zone->store->replayed(zone, copy);
        }

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
