
/*
 * Per-shard queues in the zone: two bounded FIFOs (high and normal
 * priority) with watermark hysteresis, and the in-flight list of messages
 * being delivered.  Messages are made here, from offers, in the chunks
 * ngx_omnibus_msg_chunk() sizes.  A message is freed when its last
 * reference goes: queue or in flight, retain ring, dead letter entries.
 */


#include <ngx_omnibus_core.h>


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

    if (sh->retired) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_OMNIBUS_RETIRED;
    }

    shard = &sh->shards[offer->shard];

    /* a load takes what was accepted, keys shared or not */

    if (offer->dedup_on && !offer->force) {
        switch (ngx_omnibus_dedup_find_locked(zone, offer, id)) {

        case NGX_OK:
            sh->deduplicated++;
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return NGX_OMNIBUS_DUPLICATE;

        case NGX_AGAIN:
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return NGX_OMNIBUS_PENDING;

        default:
            break;
        }
    }

    if (!offer->force
        && (shard->backpressure || shard->queued >= sh->queue_size))
    {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_OMNIBUS_BACKPRESSURE;
    }

    msg = ngx_omnibus_msg_create_locked(zone, offer);
    if (msg == NULL) {
        goto nomem;
    }

    msg->seq = ++shard->seq;
    msg->born = ngx_omnibus_now_ms();

    /*
     * A shard's sequence past what an id holds (2^40, a year at 30,000
     * messages a second): ids go on under a later instance, which sorts
     * after every id of the earlier one.
     */

    if (msg->seq % NGX_OMNIBUS_ID_SEQ_SPAN == 0) {
        sh->instance = ngx_max(msg->born, sh->instance + 1);
    }

    if (offer->id) {
        /* a stored message loaded back keeps the id it was accepted as */
        ngx_memcpy(msg->id, offer->id, NGX_OMNIBUS_ID_LEN);

    } else {
        ngx_omnibus_msg_id(msg->id, sh->instance, sh->instance_rand,
                           offer->shard, msg->seq);
    }

    ngx_memcpy(id, msg->id, NGX_OMNIBUS_ID_LEN);

    if (offer->dedup_on
        && ngx_omnibus_dedup_insert_locked(zone, offer, id) != NGX_OK)
    {
        shard->seq--;
        ngx_omnibus_msg_free_locked(zone->shpool, msg);
        goto nomem;
    }

    ngx_omnibus_queue_push_locked(zone, shard, msg);

    if (offer->hold) {
        /* counted as published when let go, once its row is committed */
        msg->held = 1;
        msg->owner = ngx_pid;
        offer->held = msg;

        ngx_shmtx_unlock(&zone->shpool->mutex);

        return NGX_OMNIBUS_QUEUED;
    }

    shard->published++;
    sh->published++;

    ngx_omnibus_topic_count_locked(sh->topics, &sh->topic_other,
                                   &offer->topic);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_omnibus_notify(zone, offer->shard);

    return NGX_OMNIBUS_QUEUED;

nomem:

    ngx_omnibus_zone_nomem(zone, log);
    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OMNIBUS_ZONE_FULL;
}


ngx_omnibus_msg_t *
ngx_omnibus_msg_create_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *o)
{
    u_char              *p;
    size_t               meta, size, rest, n;
    ngx_omnibus_msg_t   *msg;
    ngx_omnibus_seg_t   *seg, **next;

    meta = ngx_omnibus_msg_meta(o->topic.len, o->ctype.len, o->key.len);

    size = ngx_omnibus_msg_chunk(meta + o->payload.len);

    while (size < meta) {
        size <<= 1;
    }

    msg = ngx_omnibus_alloc_locked(zone, size);
    if (msg == NULL) {
        return NULL;
    }

    msg->len = o->payload.len;
    msg->head_len = ngx_min(size - meta, o->payload.len);
    msg->topic_len = o->topic.len;
    msg->ctype_len = o->ctype.len;
    msg->key_len = o->key.len;
    msg->priority = o->priority;
    msg->shard = o->shard;
    msg->json = o->json;
    msg->held = 0;
    msg->refs = 1;
    msg->rseq = 0;
    msg->pending = 0;
    msg->only = 0;
    msg->starved = 0;
    msg->owner = 0;
    msg->more = NULL;

    /* an offer without a key or a type may have NULL for them */

    p = ngx_cpymem(msg->data, o->topic.data, o->topic.len);

    if (o->ctype.len) {
        p = ngx_cpymem(p, o->ctype.data, o->ctype.len);
    }

    if (o->key.len) {
        p = ngx_cpymem(p, o->key.data, o->key.len);
    }

    ngx_memcpy(p, o->payload.data, msg->head_len);

    next = &msg->more;
    rest = o->payload.len - msg->head_len;
    p = o->payload.data + msg->head_len;

    while (rest) {
        size = ngx_omnibus_msg_chunk(ngx_omnibus_seg_hdr + rest);

        seg = ngx_omnibus_alloc_locked(zone, size);
        if (seg == NULL) {
            ngx_omnibus_msg_free_locked(zone->shpool, msg);
            return NULL;
        }

        n = ngx_min(size - ngx_omnibus_seg_hdr, rest);

        seg->next = NULL;
        seg->len = n;
        ngx_memcpy(seg->data, p, n);

        *next = seg;
        next = &seg->next;
        p += n;
        rest -= n;
    }

    return msg;
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

        /* nothing passes a message whose row is not yet committed */

        if (msg->seq <= limit && !msg->held) {
            shard->high_queued--;

        } else {
            msg = NULL;
        }
    }

    if (msg == NULL && !ngx_queue_empty(&shard->normal)) {
        msg = ngx_queue_data(ngx_queue_head(&shard->normal),
                             ngx_omnibus_msg_t, queue);

        if (msg->seq > limit || msg->held) {
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


/* one route is done with a message in flight; the last one ends it */

void
ngx_omnibus_queue_done(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *msg,
    ngx_uint_t slot)
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
        zone->sh->completed++;

        if (zone->store) {
            zone->store->done(zone, msg);
        }

        ngx_omnibus_msg_unref_locked(zone->shpool, msg);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/*
 * A held message's row is committed (ok): it is published and may go.
 * Or it is not: the publish is refused, so the message leaves its queue
 * and its idempotency key, as if never offered.
 */

void
ngx_omnibus_queue_release_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *msg, ngx_uint_t ok, u_char *dedup)
{
    ngx_str_t             topic;
    ngx_omnibus_sh_t     *sh;
    ngx_omnibus_shard_t  *shard;

    sh = zone->sh;
    shard = &sh->shards[msg->shard];

    msg->held = 0;
    msg->owner = 0;

    if (dedup) {
        ngx_omnibus_dedup_settle_locked(zone, dedup, msg->id, ok);
    }

    if (ok) {
        shard->published++;
        sh->published++;

        topic.data = ngx_omnibus_msg_topic(msg);
        topic.len = msg->topic_len;

        ngx_omnibus_topic_count_locked(sh->topics, &sh->topic_other, &topic);
        return;
    }

    ngx_queue_remove(&msg->queue);

    if (msg->priority >= NGX_OMNIBUS_HIGH_PRIORITY) {
        shard->high_queued--;
    }

    if (--shard->queued <= sh->bp_low) {
        shard->backpressure = 0;
    }

    ngx_omnibus_msg_unref_locked(zone->shpool, msg);
}


/*
 * Messages held for a worker that is gone at the head of a queue: whether
 * their rows committed is unknown, and their producers got no answer.
 * They go on (delivery is at least once) rather than stop the shard.
 * Only heads are looked at: a held message further back stops nothing.
 */

ngx_uint_t
ngx_omnibus_queue_unhold_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard)
{
    ngx_uint_t          n, i;
    ngx_queue_t        *head, *q, *next;
    ngx_omnibus_msg_t  *msg;

    n = 0;

    for (i = 0; i < 2; i++) {
        head = i ? &shard->normal : &shard->high;

        for (q = ngx_queue_head(head); q != ngx_queue_sentinel(head);
             q = next)
        {
            next = ngx_queue_next(q);
            msg = ngx_queue_data(q, ngx_omnibus_msg_t, queue);

            if (!msg->held
                || kill(msg->owner, 0) == 0 || ngx_errno != NGX_ESRCH)
            {
                break;
            }

            ngx_omnibus_queue_release_locked(zone, msg, 1, NULL);
            n++;
        }
    }

    return n;
}


/*
 * Messages in flight for a worker that is gone (crashed, or exited with
 * deliveries left) go back to the front of their queue, in order, with
 * only their undelivered routes pending.  Returns how many.
 */

ngx_uint_t
ngx_omnibus_requeue_locked(ngx_omnibus_shard_t *shard, ngx_pid_t only)
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

        /* its next owner makes the jobs of every pending route anew */
        msg->starved = 0;

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
