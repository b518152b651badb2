
/*
 * Per-shard queues in the zone: two bounded FIFOs (high and normal
 * priority) with watermark hysteresis, the in-flight list of messages
 * being delivered, and the retain ring that keeps dispatched messages for
 * subscribers.  A message is freed when its last reference goes: queue
 * or in flight, retain ring, dead letter entries.
 */


#include "ngx_omnibus.h"


static void ngx_omnibus_count_topic_locked(ngx_omnibus_sh_t *sh,
    ngx_str_t *topic);


ngx_int_t
ngx_omnibus_queue_refuses(ngx_omnibus_zone_t *zone, ngx_uint_t shard)
{
    /* read unlocked: the request phase only needs a recent answer */
    return zone->sh->shards[shard].backpressure ? NGX_DECLINED : NGX_OK;
}


ngx_omnibus_enqueue_rc_e
ngx_omnibus_enqueue(ngx_omnibus_zone_t *zone, ngx_omnibus_offer_t *offer,
    u_char *id, ngx_log_t *log)
{
    ngx_time_t           *tp;
    ngx_omnibus_sh_t     *sh;
    ngx_omnibus_msg_t    *msg;
    ngx_omnibus_shard_t  *shard;

    sh = zone->sh;

    ngx_shmtx_lock(&zone->shpool->mutex);

    /* the ring moved since the lookup: a stale shard could reorder */
    while (zone->ring.version != sh->ring_version) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        offer->shard = ngx_omnibus_ring_shard(zone, &offer->topic);
        ngx_shmtx_lock(&zone->shpool->mutex);
    }

    shard = &sh->shards[offer->shard];

    if (offer->dedup_on
        && ngx_omnibus_dedup_find_locked(zone, offer, id) == NGX_OK)
    {
        sh->deduplicated++;
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_OMNIBUS_DUPLICATE;
    }

    if (shard->backpressure || shard->queued >= sh->queue_size) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_OMNIBUS_BACKPRESSURE;
    }

    msg = ngx_omnibus_msg_alloc_locked(zone, offer);
    if (msg == NULL) {
        goto nomem;
    }

    tp = ngx_timeofday();

    msg->seq = ++shard->seq;
    msg->born = (uint64_t) tp->sec * 1000 + tp->msec;

    /* ids sort by sequence within a shard of one zone instance */
    ngx_sprintf(msg->id, "%012xL%08xD-%04xD-%010xL",
                sh->instance, sh->instance_rand, (uint32_t) offer->shard,
                msg->seq);
    ngx_memcpy(id, msg->id, NGX_OMNIBUS_ID_LEN);

    if (offer->dedup_on
        && ngx_omnibus_dedup_insert_locked(zone, offer, id) != NGX_OK)
    {
        shard->seq--;
        ngx_omnibus_msg_free_locked(zone->shpool, msg);
        goto nomem;
    }

    ngx_omnibus_queue_push_locked(zone, shard, msg);

    shard->published++;
    sh->published++;

    ngx_omnibus_count_topic_locked(sh, &offer->topic);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_omnibus_notify(zone, offer->shard);

    return NGX_OMNIBUS_QUEUED;

nomem:

    ngx_omnibus_zone_nomem(zone, log);
    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OMNIBUS_ZONE_FULL;
}


static void
ngx_omnibus_count_topic_locked(ngx_omnibus_sh_t *sh, ngx_str_t *topic)
{
    uint32_t                   h;
    ngx_uint_t                 i, slot;
    ngx_omnibus_topic_stat_t  *ts;

    /* open addressing; once the table is full new topics count as _other */

    h = ngx_omnibus_topic_hash(topic->data, topic->len);

    for (i = 0; i < NGX_OMNIBUS_TOPIC_STATS; i++) {
        slot = (h + i) % NGX_OMNIBUS_TOPIC_STATS;
        ts = &sh->topics[slot];

        if (ts->len == 0) {
            ts->hash = h;
            ts->len = (u_char) topic->len;
            ngx_memcpy(ts->topic, topic->data, topic->len);
            ts->count = 1;
            return;
        }

        if (ts->hash == h && ts->len == topic->len
            && ngx_memcmp(ts->topic, topic->data, topic->len) == 0)
        {
            ts->count++;
            return;
        }
    }

    sh->topic_other++;
}


void
ngx_omnibus_queue_push_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, ngx_omnibus_msg_t *msg)
{
    if (msg->priority >= NGX_OMNIBUS_HIGH_PRIORITY) {
        ngx_queue_insert_tail(&shard->high, &msg->queue);
        shard->high_queued++;

    } else {
        ngx_queue_insert_tail(&shard->normal, &msg->queue);
    }

    if (++shard->queued >= zone->sh->bp_high) {
        shard->backpressure = 1;
    }
}


/* the next message, high queue first, if its seq is within the limit */

ngx_omnibus_msg_t *
ngx_omnibus_dequeue_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, uint64_t limit)
{
    ngx_omnibus_msg_t  *msg;

    msg = NULL;

    if (!ngx_queue_empty(&shard->high)) {
        msg = ngx_queue_data(ngx_queue_head(&shard->high), ngx_omnibus_msg_t,
                             queue);

        if (msg->seq <= limit) {
            shard->high_queued--;

        } else {
            msg = NULL;
        }
    }

    if (msg == NULL && !ngx_queue_empty(&shard->normal)) {
        msg = ngx_queue_data(ngx_queue_head(&shard->normal),
                             ngx_omnibus_msg_t, queue);

        if (msg->seq > limit) {
            msg = NULL;
        }
    }

    if (msg == NULL) {
        return NULL;
    }

    ngx_queue_remove(&msg->queue);

    if (--shard->queued <= zone->sh->bp_low) {
        shard->backpressure = 0;
    }

    return msg;
}


void
ngx_omnibus_msg_unref_locked(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *msg)
{
    if (--msg->refs == 0) {
        ngx_omnibus_msg_free_locked(zone->shpool, msg);
    }
}


void
ngx_omnibus_retain_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, ngx_omnibus_msg_t *msg)
{
    ngx_queue_t        *q;
    ngx_omnibus_msg_t  *old;

    if (zone->sh->retain == 0 || msg->rseq) {
        return;
    }

    msg->rseq = ++shard->rseq;
    msg->refs++;

    ngx_queue_insert_tail(&shard->retain, &msg->rlink);
    shard->retained++;

    /*
     * Past "retain" the oldest goes, unless a worker's fan-out has not
     * fed it to its subscribers yet: a burst must not overtake them.
     * That hold is bounded, and memory pressure evicts held ones too.
     */

    while (shard->retained > zone->sh->retain) {
        q = ngx_queue_head(&shard->retain);
        old = ngx_queue_data(q, ngx_omnibus_msg_t, rlink);

        if (ngx_omnibus_retain_held(shard, old->rseq)) {
            if (shard->retained <= zone->sh->retain + NGX_OMNIBUS_HOLD_MAX) {
                break;
            }

            zone->sh->sub_missed++;
        }

        ngx_queue_remove(q);
        shard->retained--;

        ngx_omnibus_msg_unref_locked(zone, old);
    }
}


/* a worker with subscribers has not fed this message to them yet */

ngx_uint_t
ngx_omnibus_retain_held(ngx_omnibus_shard_t *shard, uint64_t rseq)
{
    ngx_uint_t  w;

    for (w = 0; w < ngx_min(ngx_omnibus_workers, NGX_OMNIBUS_HOLD_SLOTS); w++)
    {
        if (shard->hold[w] && shard->hold[w] - 1 < rseq) {
            return 1;
        }
    }

    return 0;
}


/* frees the oldest retained message of the fullest ring; 0 if none */

ngx_uint_t
ngx_omnibus_evict_retained_locked(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t            i;
    ngx_queue_t          *q;
    ngx_omnibus_sh_t     *sh;
    ngx_omnibus_msg_t    *msg;
    ngx_omnibus_shard_t  *shard, *fullest;

    sh = zone->sh;
    fullest = NULL;

    for (i = 0; i < sh->cap_shards; i++) {
        shard = &sh->shards[i];

        if (shard->retained && (fullest == NULL
                                || shard->retained > fullest->retained))
        {
            fullest = shard;
        }
    }

    if (fullest == NULL) {
        return 0;
    }

    q = ngx_queue_head(&fullest->retain);
    msg = ngx_queue_data(q, ngx_omnibus_msg_t, rlink);

    ngx_queue_remove(q);
    fullest->retained--;
    sh->evicted_retained++;

    if (ngx_omnibus_retain_held(fullest, msg->rseq)) {
        sh->sub_missed++;
    }

    ngx_omnibus_msg_unref_locked(zone, msg);

    return 1;
}


/* one route is done with a message in flight; the last one ends it */

void
ngx_omnibus_delivery_complete(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *msg, ngx_uint_t slot)
{
    ngx_omnibus_shard_t  *shard;

    shard = &zone->sh->shards[msg->shard];

    ngx_shmtx_lock(&zone->shpool->mutex);

    msg->pending &= ~((uint64_t) 1 << slot);

    if (msg->pending == 0) {
        ngx_omnibus_histogram_observe(&zone->sh->dispatch,
                                      ngx_omnibus_now_us() - msg->dispatched);

        ngx_queue_remove(&msg->queue);
        shard->ninflight--;
        ngx_omnibus_msg_unref_locked(zone, msg);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/*
 * Messages in flight for a worker that is gone (crashed, or exited with
 * deliveries left) go back to the front of their queue, in order, with
 * only their undelivered routes pending.  Returns how many.
 */

ngx_uint_t
ngx_omnibus_requeue_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, ngx_pid_t only)
{
    ngx_uint_t          n;
    ngx_queue_t        *q, *prev;
    ngx_omnibus_msg_t  *msg;

    n = 0;

    for (q = ngx_queue_last(&shard->inflight);
         q != ngx_queue_sentinel(&shard->inflight);
         q = prev)
    {
        prev = ngx_queue_prev(q);
        msg = ngx_queue_data(q, ngx_omnibus_msg_t, queue);

        if (only ? msg->owner != only
                 : (kill(msg->owner, 0) == 0 || ngx_errno != NGX_ESRCH))
        {
            continue;
        }

        ngx_queue_remove(q);
        shard->ninflight--;

        if (msg->priority >= NGX_OMNIBUS_HIGH_PRIORITY) {
            ngx_queue_insert_head(&shard->high, q);
            shard->high_queued++;

        } else {
            ngx_queue_insert_head(&shard->normal, q);
        }

        shard->queued++;
        n++;
    }

    return n;
}


/*
 * Messages of the shard in flight in another process: the worker this
 * one replaced in a reload, still finishing its attempts.
 */

ngx_uint_t
ngx_omnibus_inflight_elsewhere_locked(ngx_omnibus_shard_t *shard)
{
    ngx_queue_t        *q;
    ngx_omnibus_msg_t  *msg;

    for (q = ngx_queue_head(&shard->inflight);
         q != ngx_queue_sentinel(&shard->inflight);
         q = ngx_queue_next(q))
    {
        msg = ngx_queue_data(q, ngx_omnibus_msg_t, queue);

        if (msg->owner != ngx_pid) {
            return 1;
        }
    }

    return 0;
}
